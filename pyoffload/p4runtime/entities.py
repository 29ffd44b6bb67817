"""Small transformations of encoded P4Runtime entities, shared by every writer."""

from __future__ import annotations

from finsy.proto import p4r

EntityKey = tuple[object, ...]


def entity_key(entity: p4r.Entity) -> EntityKey:
    """What identifies an entity on the target (its key, not its value)."""
    kind = entity.WhichOneof("entity")
    if kind == "table_entry":
        te = entity.table_entry
        # A field's bytes start with its id, so sorting the bytes sorts by field.
        fields = tuple(sorted([m.SerializeToString(deterministic=True) for m in te.match]))
        return ("table", te.table_id, te.priority, fields, te.is_default_action)
    if kind == "action_profile_member":
        m = entity.action_profile_member
        return ("member", m.action_profile_id, m.member_id)
    if kind == "action_profile_group":
        g = entity.action_profile_group
        return ("group", g.action_profile_id, g.group_id)
    if kind == "meter_entry":
        me = entity.meter_entry
        return ("meter", me.meter_id, me.index.index)
    raise ValueError(f"the installer does not manage {kind} entities")


def read_query(entity: p4r.Entity) -> p4r.Entity:
    """A read of exactly this entity: its key, without its value."""
    query = p4r.Entity()
    query.CopyFrom(entity)
    kind = entity.WhichOneof("entity")
    if kind == "table_entry":
        query.table_entry.ClearField("action")
        query.table_entry.ClearField("meter_config")
    elif kind == "action_profile_member":
        query.action_profile_member.ClearField("action")
    elif kind == "action_profile_group":
        query.action_profile_group.ClearField("members")
    elif kind == "meter_entry":
        query.meter_entry.ClearField("config")
    return query


def without_meter_config(entity: p4r.Entity) -> p4r.Entity:
    """A meter entry back to its default (no config): how a modify-only meter is "deleted"."""
    reset = p4r.Entity()
    reset.CopyFrom(entity)
    reset.meter_entry.ClearField("config")
    return reset

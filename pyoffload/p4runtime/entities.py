"""Small transformations of encoded P4Runtime entities, shared by every writer."""

from __future__ import annotations

from finsy.proto import p4r


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

"""The BMv2 JSON read into a typed model, and the packet header vector (PHV) layout.

The PHV of a packet is one flat Python list of ints. Each header instance owns a
contiguous run of slots: its validity bit, then one slot per field, then (for a
header with a varbit field) the varbit's current width in bits. Header stacks
own one more slot, the index of the next element to extract. Generated code
addresses slots by number, so a field access is one list subscript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from .errors import PipelineLoadError, UnsupportedConstruct

Json = Any

SUPPORTED_MAJOR = 2

CORE_ERRORS = (
    "NoError",
    "PacketTooShort",
    "NoMatch",
    "StackOutOfBounds",
    "HeaderTooShort",
    "ParserTimeout",
    "ParserInvalidArgument",
)


def where(obj: Json) -> str:
    """Describe the P4 source location of a JSON object, for error messages."""
    if isinstance(obj, dict):
        si = obj.get("source_info")
        if isinstance(si, dict):
            frag = si.get("source_fragment", "")
            return f"{si.get('filename', '?')}:{si.get('line', '?')}: {frag}"
        name = obj.get("name")
        if name is not None:
            return f"'{name}'"
    return ""


def parse_hexstr(value: Json, what: str = "hexstr") -> int:
    """Parse a BMv2 hexstring (optionally negative) into an int."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise PipelineLoadError(f"{what}: expected a hex string, got {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise PipelineLoadError(f"{what}: bad hex string {value!r}") from None


def req(obj: Json, key: str, ctx: str) -> Json:
    """Fetch a required attribute, with a clear error if it is missing."""
    if not isinstance(obj, dict) or key not in obj:
        raise PipelineLoadError(f"{ctx}: missing attribute '{key}'")
    return obj[key]


@dataclass(slots=True)
class HeaderType:
    """A header type: field names, widths, signedness, optional varbit field."""

    name: str
    fields: list[tuple[str, int, bool]]
    vl_index: int | None = None  # index of the varbit field, if any
    max_length: int = 0  # bytes, for varbit headers
    length_exp: Json = None

    @property
    def fixed_bits(self) -> int:
        return sum(w for _, w, _ in self.fields)

    def field_index(self, name: str) -> int:
        for i, (n, _, _) in enumerate(self.fields):
            if n == name:
                return i
        raise KeyError(name)


@dataclass(slots=True)
class HeaderInst:
    """A header (or metadata) instance and where it lives in the PHV."""

    name: str
    htype: HeaderType
    base: int
    metadata: bool
    union: str | None = None

    @property
    def nslots(self) -> int:
        return 1 + len(self.htype.fields) + (1 if self.htype.vl_index is not None else 0)

    def slot(self, field_name: str) -> int:
        if field_name == "$valid$":
            return self.base
        return self.base + 1 + self.htype.field_index(field_name)

    @property
    def vl_slot(self) -> int:
        return self.base + 1 + len(self.htype.fields)


@dataclass(slots=True)
class StackInst:
    """A header stack: element bases in order, a scratch element for out-of-range indices."""

    name: str
    htype: HeaderType
    elements: list[HeaderInst]
    next_slot: int
    scratch: HeaderInst


@dataclass(slots=True)
class UnionInst:
    """A header union: its member headers in declaration order."""

    name: str
    members: list[tuple[str, HeaderInst]]


@dataclass(slots=True)
class UnionStackInst:
    """A header-union stack: its unions in order, the next index, per-member scratch headers.

    Each union's member headers lie next to each other in the PHV (p4c declares them
    in a row), so an element is one run of `width` slots starting at `bases[i]`."""

    name: str
    unions: list[UnionInst]
    member_names: list[str]
    next_slot: int
    scratch: list[HeaderInst]  # one per member, for `last` of an empty stack
    width: int

    @property
    def bases(self) -> list[int]:
        return [u.members[0][1].base for u in self.unions]

    def member_index(self, name: str, ctx: str = "") -> int:
        if name not in self.member_names:
            raise PipelineLoadError(f"{ctx}: header union stack {self.name} has no member {name!r}")
        return self.member_names.index(name)


@dataclass(slots=True)
class Layout:
    """All headers, stacks and unions of a program and the PHV they make up."""

    types: dict[str, HeaderType] = field(default_factory=dict)
    headers: dict[str, HeaderInst] = field(default_factory=dict)
    headers_by_id: dict[int, HeaderInst] = field(default_factory=dict)
    stacks: dict[str, StackInst] = field(default_factory=dict)
    unions: dict[str, UnionInst] = field(default_factory=dict)
    union_stacks: dict[str, UnionStackInst] = field(default_factory=dict)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)
    nslots: int = 0
    init: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def header(self, name: str, ctx: str = "") -> HeaderInst:
        h = self.headers.get(name)
        if h is None:
            raise PipelineLoadError(f"{ctx}: unknown header instance '{name}'")
        return h

    def field_ref(self, hname: str, fname: str, ctx: str = "") -> tuple[HeaderInst, int]:
        """Resolve a (header, field) reference to (header, slot index)."""
        h = self.header(hname, ctx)
        try:
            return h, h.slot(fname)
        except KeyError:
            raise PipelineLoadError(f"{ctx}: header '{hname}' has no field '{fname}'") from None

    def field_width(self, h: HeaderInst, slot: int) -> tuple[int, bool]:
        """Width and signedness of the field at `slot` of header `h`."""
        i = slot - h.base - 1
        if i < 0:
            return 1, False
        _, w, s = h.htype.fields[i]
        return w, s

    def alias_slot(self, name: str) -> int | None:
        """Slot of a field named as BMv2 targets expect it (through `field_aliases`)."""
        if name in self.aliases:
            hname, fname = self.aliases[name]
        else:
            hname, _, fname = name.partition(".")
        h = self.headers.get(hname)
        if h is None:
            return None
        try:
            return h.slot(fname)
        except KeyError:
            return None

    def error_code(self, name: str) -> int:
        if name in self.errors:
            return self.errors[name]
        # not declared by the program: give it a code no declared error uses
        return 2**31 - 2 - CORE_ERRORS.index(name)


def build_layout(cfg: Json) -> Layout:
    """Lay out the PHV for the headers, stacks and unions of `cfg`."""
    lay = Layout()
    for ht in cfg.get("header_types", []):
        name = req(ht, "name", "header_types")
        fields: list[tuple[str, int, bool]] = []
        vl_index = None
        for i, f in enumerate(req(ht, "fields", f"header type {name}")):
            if not isinstance(f, list) or len(f) < 2:
                raise PipelineLoadError(f"header type {name}: bad field {f!r}")
            fname, width = f[0], f[1]
            signed = bool(f[2]) if len(f) > 2 else False
            if width == "*":
                if vl_index is not None:
                    raise PipelineLoadError(f"header type {name}: two varbit fields")
                vl_index = i
                width = 0
            if not isinstance(width, int) or width < 0:
                raise PipelineLoadError(f"header type {name}: bad width for field {fname}")
            fields.append((fname, width, signed))
        lay.types[name] = HeaderType(
            name, fields, vl_index, int(ht.get("max_length") or 0), ht.get("length_exp")
        )
    slot = 0
    for h in cfg.get("headers", []):
        name = req(h, "name", "headers")
        tname = req(h, "header_type", f"header {name}")
        if tname not in lay.types:
            raise PipelineLoadError(f"header {name}: unknown header type '{tname}'")
        inst = HeaderInst(name, lay.types[tname], slot, bool(h.get("metadata", False)))
        lay.headers[name] = inst
        lay.headers_by_id[int(req(h, "id", f"header {name}"))] = inst
        slot += inst.nslots
    for s in cfg.get("header_stacks", []):
        name = req(s, "name", "header_stacks")
        ids = req(s, "header_ids", f"header stack {name}")
        elems = []
        for i in ids:
            if i not in lay.headers_by_id:
                raise PipelineLoadError(f"header stack {name}: unknown header id {i}")
            elems.append(lay.headers_by_id[i])
        ht = lay.types.get(s.get("header_type", ""), elems[0].htype if elems else None)
        if ht is None:
            raise PipelineLoadError(f"header stack {name}: no header type")
        scratch = HeaderInst(f"{name}[out-of-range]", ht, slot, False)
        slot += scratch.nslots
        lay.stacks[name] = StackInst(name, ht, elems, slot, scratch)
        slot += 1
    utypes = {u["name"]: u for u in cfg.get("header_union_types", [])}
    unions_by_id: dict[int, UnionInst] = {}
    for u in cfg.get("header_unions", []):
        name = req(u, "name", "header_unions")
        ut = utypes.get(u.get("union_type", ""))
        member_names = [m[0] for m in ut["headers"]] if ut else []
        members = []
        for i, hid in enumerate(req(u, "header_ids", f"header union {name}")):
            if hid not in lay.headers_by_id:
                raise PipelineLoadError(f"header union {name}: unknown header id {hid}")
            hi = lay.headers_by_id[hid]
            hi.union = name
            members.append((member_names[i] if i < len(member_names) else hi.name, hi))
        lay.unions[name] = unions_by_id[int(req(u, "id", f"header union {name}"))] = UnionInst(
            name, members
        )
    for us in cfg.get("header_union_stacks", []):
        slot = _union_stack(lay, us, unions_by_id, slot)
    lay.nslots = slot
    init = [0] * slot
    for hi in lay.headers.values():
        if hi.metadata:
            init[hi.base] = 1
    lay.init = init
    for e in cfg.get("errors", []):
        if not isinstance(e, list) or len(e) != 2:
            raise PipelineLoadError(f"errors: bad entry {e!r}")
        lay.errors[str(e[0])] = int(e[1])
    for a in cfg.get("field_aliases", []):
        if not isinstance(a, list) or len(a) != 2:
            raise PipelineLoadError(f"field_aliases: bad entry {a!r}")
        lay.aliases[str(a[0])] = (str(a[1][0]), str(a[1][1]))
    return lay


def _union_stack(lay: Layout, us: Json, unions_by_id: dict[int, UnionInst], slot: int) -> int:
    """Add header-union stack `us` to `lay` (its scratch headers and next index from `slot`)."""
    name = req(us, "name", "header_union_stacks")
    unions = []
    for uid in req(us, "header_union_ids", f"header union stack {name}"):
        if uid not in unions_by_id:
            raise PipelineLoadError(f"header union stack {name}: unknown header union id {uid}")
        unions.append(unions_by_id[uid])
    if not unions or not unions[0].members:
        raise PipelineLoadError(f"header union stack {name}: no elements")
    first = [h for _, h in unions[0].members]
    width = first[-1].base + first[-1].nslots - first[0].base
    for u in unions:
        hs = [h for _, h in u.members]
        if [h.htype.name for h in hs] != [h.htype.name for h in first] or any(
            b.base != a.base + a.nslots for a, b in pairwise(hs)
        ):
            raise UnsupportedConstruct(
                f"header union stack {name}: members not laid out in a row", where(us)
            )
    scratch = []
    for mname, h in unions[0].members:
        scratch.append(HeaderInst(f"{name}[out-of-range].{mname}", h.htype, slot, False))
        slot += scratch[-1].nslots
    lay.union_stacks[name] = UnionStackInst(
        name, unions, [m for m, _ in unions[0].members], slot, scratch, width
    )
    return slot + 1


def check_version(cfg: Json) -> None:
    """Refuse JSON whose major format version the engine does not know."""
    if not isinstance(cfg, dict):
        raise PipelineLoadError("BMv2 JSON: the top level must be an object")
    meta = cfg.get("__meta__")
    if meta is None:
        return
    version = meta.get("version") if isinstance(meta, dict) else None
    if not isinstance(version, list) or not version or not isinstance(version[0], int):
        raise PipelineLoadError(f"BMv2 JSON: bad __meta__.version {version!r}")
    if version[0] != SUPPORTED_MAJOR:
        raise PipelineLoadError(
            f"BMv2 JSON format version {version[0]}.x is not supported "
            f"(expected {SUPPORTED_MAJOR}.x)"
        )

"""Named calculations (hash/checksum inputs) and the v1model checksum verify/update.

A calculation's input is the bit-concatenation of its fields, constants and
whole headers, skipping invalid headers, padded with zero bits to a whole
byte, optionally followed by the packet payload (the bytes the parser did not
consume), exactly as BMv2's BufBuilder does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .codegen import Namespace
from .errors import PipelineLoadError, UnsupportedConstruct
from .expressions import ExprCompiler, ctx_of
from .hashes import make_hash
from .headers import HeaderCodec
from .model import Json, Layout, parse_hexstr
from .packet import Pkt

InputFn = Callable[[list[int], Pkt], bytes]


@dataclass(slots=True)
class Calculation:
    """A named calculation: input builder and hash algorithm."""

    name: str
    algo: str
    input: InputFn
    hash: Callable[[bytes], int]

    def output(self, f: list[int], p: Pkt) -> int:
        return self.hash(self.input(f, p))


def compile_input(
    items: Json, lay: Layout, ns: Namespace, codecs: dict[str, HeaderCodec], ctx: str
) -> InputFn:
    """Generate the function that serialises a calculation's input list."""
    body = ["v = 0", "n = 0"]
    payload = False
    group: list[tuple[int, int]] = []  # consecutive (slot, width) of one header
    group_base: int | None = None

    def flush() -> None:
        nonlocal group, group_base
        if not group:
            return
        total = sum(w for _, w in group)
        parts = []
        shift = total
        for slot, w in group:
            shift -= w
            term = f"(f[{slot}] & {(1 << w) - 1})"
            parts.append(f"({term} << {shift})" if shift else term)
        cond = "" if group_base is None else f"if f[{group_base}]: "
        body.append(f"{cond}v = (v << {total}) | {' | '.join(parts)}; n += {total}")
        group, group_base = [], None

    for it in items:
        t = it.get("type")
        val = it.get("value")
        if payload:
            raise UnsupportedConstruct("calculation input after 'payload'", ctx)
        if t == "field":
            h, slot = lay.field_ref(val[0], val[1], ctx)
            w, _ = lay.field_width(h, slot)
            if h.htype.vl_index is not None and slot == h.base + 1 + h.htype.vl_index:
                # A varbit contributes its current width (kept in the header's
                # width slot), e.g. IPv4 options in the header checksum.
                flush()
                vl = h.vl_slot
                body.append(
                    f"if f[{h.base}]: w = f[{vl}]; "
                    f"v = (v << w) | (f[{slot}] & ((1 << w) - 1)); n += w"
                )
                continue
            base = None if h.metadata else h.base
            if group and base != group_base:
                flush()
            group_base = base
            group.append((slot, w))
            continue
        flush()
        if t == "hexstr":
            w = int(it.get("bitwidth", 0))
            if w <= 0:
                raise PipelineLoadError(f"{ctx}: hexstr input without a bitwidth")
            c = parse_hexstr(val, ctx) & ((1 << w) - 1)
            body.append(f"v = (v << {w}) | {c}; n += {w}")
        elif t == "header":
            h = lay.header(val, ctx)
            codec = ns.const(codecs[h.htype.name].emit, "emit")
            body.append(
                f"if f[{h.base}]:\n        hb = {codec}(f, {h.base}); "
                f"v = (v << (8 * len(hb))) | int.from_bytes(hb, 'big'); n += 8 * len(hb)"
            )
        elif t == "payload":
            payload = True
        else:
            raise UnsupportedConstruct(f"calculation input of type '{t}'", ctx)
    flush()
    body.append("nb = (n + 7) >> 3")
    body.append("out = (v << (nb * 8 - n)).to_bytes(nb, 'big')")
    body.append("return out + p.data[p.pos:]" if payload else "return out")
    return ns.compile_function("calc_input", "f, p", body, f"calculation {ctx}")


def build_calculations(
    cfg: Json, lay: Layout, ns: Namespace, codecs: dict[str, HeaderCodec]
) -> dict[str, Calculation]:
    out: dict[str, Calculation] = {}
    for c in cfg.get("calculations", []):
        name = c.get("name")
        ctx = ctx_of(c, f"calculation {name}")
        algo = str(c.get("algo"))
        fn = compile_input(c.get("input", []), lay, ns, codecs, ctx)
        out[name] = Calculation(name, algo, fn, make_hash(algo, ctx))
    return out


@dataclass(slots=True)
class Checksum:
    """A v1model checksum: verified after parsing, updated before deparsing."""

    name: str
    target_slot: int
    target_width: int
    target_header: int  # base slot of the target field's header
    calc: Calculation
    cond: Callable[[list[int]], bool] | None
    verify: bool
    update: bool

    def verify_ok(self, f: list[int], p: Pkt) -> bool:
        if not f[self.target_header]:
            return True
        if self.cond is not None and not self.cond(f):
            return True
        v = self.calc.output(f, p) & ((1 << self.target_width) - 1)
        return v == f[self.target_slot] & ((1 << self.target_width) - 1)

    def do_update(self, f: list[int], p: Pkt) -> None:
        if self.cond is not None and not self.cond(f):
            return
        f[self.target_slot] = self.calc.output(f, p) & ((1 << self.target_width) - 1)


def build_checksums(
    cfg: Json, lay: Layout, ns: Namespace, ec: ExprCompiler, calcs: dict[str, Calculation]
) -> list[Checksum]:
    out = []
    for c in cfg.get("checksums", []):
        name = c.get("name")
        ctx = ctx_of(c, f"checksum {name}")
        ctype = c.get("type", "generic")
        if ctype != "generic":
            raise UnsupportedConstruct(f"checksum type '{ctype}'", ctx)
        target = c.get("target")
        h, slot = lay.field_ref(target[0], target[1], ctx)
        w, _ = lay.field_width(h, slot)
        calc = calcs.get(c.get("calculation"))
        if calc is None:
            raise PipelineLoadError(f"{ctx}: unknown calculation {c.get('calculation')!r}")
        cond = None
        if c.get("if_cond") is not None:
            src = ec.boolean(c["if_cond"], ctx)
            cond = ns.compile_function("cond", "f", [f"return {src}"], ctx)
        out.append(
            Checksum(
                name,
                slot,
                w,
                h.base,
                calc,
                cond,
                bool(c.get("verify", True)),
                bool(c.get("update", True)),
            )
        )
    return out

"""Compiling BMv2 actions (lists of primitive calls) into Python functions `fn(f, p, a)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import PipelineLoadError
from .expressions import ctx_of
from .model import Json, parse_hexstr
from .packet import Pkt
from .primitives import CompileEnv, PrimitiveCompiler

ActionFn = Callable[[list[int], Pkt, tuple[int, ...]], None]


@dataclass(slots=True)
class Action:
    """A compiled action and its parameters (name, bit width)."""

    name: str
    id: int
    params: list[tuple[str, int]]
    fn: ActionFn

    def check_args(self, args: list[int] | tuple[int, ...], where: str) -> tuple[int, ...]:
        """Validate control-plane arguments: count and widths."""
        from .errors import InvalidValue

        if len(args) != len(self.params):
            raise InvalidValue(
                f"{where}: action {self.name} takes {len(self.params)} arguments, got {len(args)}"
            )
        for v, (pname, w) in zip(args, self.params, strict=True):
            if not isinstance(v, int) or v < 0 or v >> w:
                raise InvalidValue(
                    f"{where}: argument {pname} of action {self.name} must fit {w} bits, got {v!r}"
                )
        return tuple(args)


def compile_body(pc: PrimitiveCompiler, prims: list[Json], ctx: str) -> list[str]:
    """Source lines for a primitive list; `_jump`/`_jump_if_zero` use a small dispatch loop."""
    has_jumps = any(p.get("op") in ("_jump", "_jump_if_zero") for p in prims)
    if not has_jumps:
        lines: list[str] = []
        for prim in prims:
            lines += pc.compile(prim, ctx_of(prim, ctx))
        return lines
    lines = ["_pc = 0", "while True:"]
    n = len(prims)
    for i, prim in enumerate(prims):
        pctx = ctx_of(prim, ctx)
        op = prim.get("op")
        lines.append(f"    {'if' if i == 0 else 'elif'} _pc == {i}:")
        params = prim.get("parameters", [])
        if op == "_jump":
            target = _jump_target(params[0], n, pctx)
            lines.append(f"        _pc = {target}")
            lines.append("        continue")
        elif op == "_jump_if_zero":
            cond = pc.ec.data(params[0], pctx)
            target = _jump_target(params[1], n, pctx)
            lines.append(f"        if ({cond}) == 0:")
            lines.append(f"            _pc = {target}")
            lines.append("            continue")
        else:
            body = pc.compile(prim, pctx) or ["pass"]
            lines += ["        " + ln for ln in body]
        lines.append(f"        _pc = {i + 1}")
        lines.append("        continue")
    lines.append("    break")
    return lines


def _jump_target(p: Json, n: int, ctx: str) -> int:
    if not isinstance(p, dict) or p.get("type") != "hexstr":
        raise PipelineLoadError(f"{ctx}: jump offset must be a constant")
    t = parse_hexstr(p["value"], ctx)
    if not 0 <= t <= n:
        raise PipelineLoadError(f"{ctx}: jump offset {t} out of range")
    return t


def build_actions(cfg: Json, env: CompileEnv, pc: PrimitiveCompiler) -> dict[int, Action]:
    out: dict[int, Action] = {}
    for a in cfg.get("actions", []):
        name = a.get("name")
        aid = int(a.get("id", -1))
        ctx = f"action {name}"
        params = [
            (str(r.get("name")), int(r.get("bitwidth", 0))) for r in a.get("runtime_data", [])
        ]
        body = compile_body(pc, a.get("primitives", []), ctx)
        fn = env.ns.compile_function("action", "f, p, a", body, ctx)
        if aid in out:
            raise PipelineLoadError(f"{ctx}: duplicate action id {aid}")
        out[aid] = Action(str(name), aid, params, fn)
    return out

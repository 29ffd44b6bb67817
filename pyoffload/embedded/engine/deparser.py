"""Compiling a BMv2 deparser: checksum updates, deparser primitives, then emit in order."""

from __future__ import annotations

from collections.abc import Callable

from .actions import compile_body
from .calculations import Checksum
from .errors import PipelineLoadError
from .model import Json
from .packet import Pkt
from .primitives import CompileEnv, PrimitiveCompiler

DeparseFn = Callable[[list[int], Pkt], bytes]


def build_deparser(
    cfg: Json, env: CompileEnv, pc: PrimitiveCompiler, checksums: list[Checksum]
) -> DeparseFn:
    """Generate `deparse(f, p) -> frame`: valid headers in order, then the payload."""
    name = str(cfg.get("name"))
    ctx = f"deparser {name}"
    ns = env.ns
    body = ["a = ()"]
    updates = [c for c in checksums if c.update]
    for c in updates:
        body.append(f"{ns.const(c, 'ck')}.do_update(f, p)")
    body += compile_body(pc, cfg.get("primitives", []), ctx)
    body.append("out = []")
    for hname in cfg.get("order", []):
        h = env.lay.header(hname, ctx)
        codec = env.codecs[h.htype.name]
        if codec.nbytes < 0:
            raise PipelineLoadError(f"{ctx}: header {hname} is not a whole number of bytes")
        emit = ns.const(codec.emit, "emit")
        body.append(f"if f[{h.base}]: out.append({emit}(f, {h.base}))")
    body.append("out.append(p.data[p.pos:])")
    body.append("return b''.join(out)")
    fn: DeparseFn = ns.compile_function("deparse", "f, p", body, ctx)
    return fn

"""Regenerate ``pyoffload/pipeline/build`` from the P4 sources in ``p4src`` with p4c.

Run as ``scripts/build-p4`` (or ``python -m devtools.p4build`` in the checkout). Without
``p4c-bm2-ss`` on PATH it says so and changes nothing. Outputs are written to a
temporary directory first and moved into place only when the compiler
succeeded, so a failed build never leaves half-updated artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.p4stamp import (
    MAIN_SOURCE,
    P4SRC_DIR,
    parse_constants,
    sha256_file,
    source_digests,
)
from pyoffload.pipeline.artifacts import (
    CONSTANTS_NAME,
    JSON_NAME,
    P4INFO_NAME,
    STAMP_NAME,
    VARIANTS,
    Artifacts,
    build_dir,
)

COMPILER = "p4c-bm2-ss"


class BuildError(Exception):
    """p4c is missing or rejected the program."""


def compiler_version(compiler: str) -> str:
    """``p4c-bm2-ss Version 1.2.4.8 (SHA: ...)``; p4c prints it on stderr."""
    out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True)
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("Version"):
            return f"{Path(compiler).name} {line.strip()}"
    return Path(compiler).name


def compile_command(compiler: str, out: str, defines: tuple[str, ...] = ()) -> list[str]:
    """The p4c command line, relative to ``p4src`` (``out``: the output directory)."""
    return [compiler, "--arch", "v1model", "--std", "p4-16", *defines,
            "-o", f"{out}/{JSON_NAME}", "--p4runtime-files", f"{out}/{P4INFO_NAME}", MAIN_SOURCE]


def compile_into(out_dir: Path, p4src: Path = P4SRC_DIR, compiler: str = COMPILER,
                 defines: tuple[str, ...] = ()) -> None:
    """Compile the pipeline into ``out_dir`` (JSON, P4Info, constants)."""
    if shutil.which(compiler) is None:
        raise BuildError(
            f"{compiler} is not installed (p4c is in no package registry: build p4c "
            "v1.2.4.8 from source and put p4c-bm2-ss on PATH); nothing was changed."
        )
    # Relative paths keep the machine's directories out of the JSON's source_info.
    cmd = compile_command(compiler, str(out_dir), defines)
    result = subprocess.run(cmd, cwd=p4src, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{compiler} failed:\n{result.stderr.strip() or result.stdout.strip()}")
    constants = parse_constants((p4src / "include" / "defines.p4").read_text())
    (out_dir / CONSTANTS_NAME).write_text(json.dumps(constants, indent=2, sort_keys=True) + "\n")


def build(p4src: Path = P4SRC_DIR, compiler: str = COMPILER,
          into: Path | None = None) -> Artifacts:
    """Compile the program and every variant, then replace their build directories
    (``into``: default, the package's ``pyoffload/pipeline/build``)."""
    into = into or build_dir()
    with tempfile.TemporaryDirectory() as tmp:
        staged: list[tuple[Path, Path]] = []
        for variant, defines in (("", ()), *VARIANTS.items()):
            out = Path(tmp) / (variant or "main")
            out.mkdir()
            compile_into(out, p4src, compiler, defines)
            relative = (os.path.relpath(into, p4src) + f"/{variant}").rstrip("/")
            stamp = {
                "compiler": compiler_version(compiler),
                "command": "cd p4src && " + " ".join(compile_command(compiler, relative,
                                                                     defines)),
                "sources": source_digests(p4src),
                "outputs": {name: sha256_file(out / name)
                            for name in (JSON_NAME, P4INFO_NAME, CONSTANTS_NAME)},
            }
            (out / STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
            staged.append((out, into / variant))
        for out, target in staged:  # only once every variant compiled
            target.mkdir(parents=True, exist_ok=True)
            for name in (JSON_NAME, P4INFO_NAME, CONSTANTS_NAME, STAMP_NAME):
                shutil.move(str(out / name), target / name)
    return Artifacts.in_dir(into)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-p4",
        description="Compile p4src/ into pyoffload/pipeline/build/ with p4c-bm2-ss.",
    )
    parser.add_argument("--compiler", default=COMPILER, help="p4c BMv2 back end to run")
    args = parser.parse_args(argv)
    try:
        artifacts = build(compiler=args.compiler)
    except BuildError as exc:
        print(f"build-p4: {exc}", file=sys.stderr)
        return 1
    print(f"build-p4: wrote {artifacts.bmv2_json.parent} (stamp {artifacts.stamp.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

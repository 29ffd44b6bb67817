"""The committed P4 artifacts match their sources, and the build tool behaves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import p4stamp
from devtools.p4stamp import REBUILD_COMMAND, check_fresh, parse_constants, stale_reasons
from pyoffload.pipeline import artifacts as p4artifacts
from pyoffload.pipeline.artifacts import ArtifactError, Artifacts, build_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("variant", ["", *p4artifacts.VARIANTS])
def test_committed_artifacts_match_sources(variant: str) -> None:
    reasons = stale_reasons(artifacts=Artifacts.in_dir(build_dir(variant)))
    assert not reasons, (
        f"pyoffload/pipeline/build/{variant} is stale ({'; '.join(reasons)}): "
        f"run `{REBUILD_COMMAND}` and commit"
    )


def test_large_variant_tracks_a_million_connections() -> None:
    bmv2 = json.loads(Artifacts.packaged("large").bmv2_json.read_text())
    sizes = {r["name"]: r["size"] for r in bmv2["register_arrays"]}
    assert sizes["vnic.ct_info"] == 1_048_576 + 16_384
    tables = {t["name"]: t["max_size"] for pipe in bmv2["pipelines"] for t in pipe["tables"]}
    assert tables["vnic.ct_overflow"] == 16_384


def test_stale_source_is_named_with_the_command(tmp_path: Path) -> None:
    copy = tmp_path / "p4src"
    shutil.copytree(p4stamp.P4SRC_DIR, copy)
    built = Artifacts.in_dir(shutil.copytree(build_dir(), tmp_path / "build"))
    stage = copy / "stages" / "port_map.p4"
    stage.write_text(stage.read_text() + "\n// changed\n")
    (copy / "stages" / "extra.p4").write_text("// new stage\n")
    reasons = stale_reasons(copy, built)
    assert "source stages/port_map.p4 changed" in reasons
    assert "source stages/extra.p4 is new" in reasons
    with pytest.raises(ArtifactError, match=REBUILD_COMMAND):
        check_fresh(copy, built)


def test_hand_edited_output_is_detected(tmp_path: Path) -> None:
    built = Artifacts.in_dir(shutil.copytree(build_dir(), tmp_path / "build"))
    built.p4info.write_text(built.p4info.read_text() + "\n")
    assert any("vnic.p4info.txtpb differs" in r for r in stale_reasons(artifacts=built))


def test_constants_are_the_compiled_defines() -> None:
    defines = (p4stamp.P4SRC_DIR / "include" / "defines.p4").read_text()
    constants = p4artifacts.load_constants()
    assert constants == parse_constants(defines)
    assert constants["CPU_PORT"] == 510
    assert constants["DIR_TO_GUEST"] == 1


def test_parse_constants_reads_hex_and_decimal() -> None:
    text = "const bit<8> TCP_SYN = 0x02;\nconst port_t CPU_PORT = 510;\n// const bit<1> NO = 1\n"
    assert parse_constants(text) == {"TCP_SYN": 2, "CPU_PORT": 510}


def test_every_p4runtime_name_is_stable() -> None:
    """Tables, actions and externs carry explicit vnic.* names (@name), so
    moving code between controls never renames them in the P4Info."""
    from finsy import P4Schema

    schema = P4Schema(Artifacts.packaged().p4info)
    p4info = schema.p4info
    named = [
        *(t.preamble.name for t in p4info.tables),
        *(a.preamble.name for a in p4info.actions if a.preamble.name != "NoAction"),
        *(r.preamble.name for r in p4info.registers),
        *(c.preamble.name for c in p4info.counters),
        *(c.preamble.name for c in p4info.direct_counters),
        *(m.preamble.name for m in p4info.meters),
        *(m.preamble.name for m in p4info.direct_meters),
        *(p.preamble.name for p in p4info.action_profiles),
    ]
    assert named
    unstable = [n for n in named if not n.startswith("vnic.")]
    assert not unstable, f"P4 objects without a stable @name(\".vnic.*\"): {unstable}"


def test_capacities_come_from_sizes_header() -> None:
    bmv2 = json.loads(Artifacts.packaged().bmv2_json.read_text())
    sizes_text = (p4stamp.P4SRC_DIR / "include" / "sizes.p4").read_text()
    sizes = dict(
        (name, int(value))
        for name, value in (
            line.split()[1:3] for line in sizes_text.splitlines() if line.startswith("#define ")
            and len(line.split()) == 3 and line.split()[2].isdigit()
        )
    )
    registers = {r["name"]: r["size"] for r in bmv2["register_arrays"]}
    assert registers["vnic.ct_info"] == sizes["CT_SLOTS"] + sizes["CT_OVERFLOW_SLOTS"]
    assert sizes["CT_SLOTS"] >= 65536
    tables = {
        t["name"]: t["max_size"]
        for pipe in bmv2["pipelines"] for t in pipe["tables"]
    }
    assert tables["vnic.acl"] == sizes["ACL_SIZE"]
    assert tables["vnic.port_map"] == sizes["PORT_MAP_SIZE"]


def test_build_without_p4c_says_so_and_changes_nothing(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in build_dir().rglob("*") if p.is_file()}
    env = dict(os.environ, PATH=str(tmp_path))  # no p4c-bm2-ss on this PATH
    result = subprocess.run(
        [sys.executable, "-m", "devtools.p4build"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "p4c-bm2-ss is not installed" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    after = {p: p.read_bytes() for p in build_dir().rglob("*") if p.is_file()}
    assert before == after


@pytest.mark.p4c
@pytest.mark.skipif(shutil.which("p4c-bm2-ss") is None, reason="p4c-bm2-ss is not installed")
@pytest.mark.parametrize("variant", ["", *p4artifacts.VARIANTS])
def test_artifacts_are_exactly_what_p4c_produces(tmp_path: Path, variant: str) -> None:
    from devtools.p4build import compile_into

    compile_into(tmp_path, defines=p4artifacts.VARIANTS.get(variant, ()))
    committed = Artifacts.in_dir(build_dir(variant))
    for name, path in committed.outputs().items():
        assert (tmp_path / name).read_bytes() == path.read_bytes(), f"{variant}/{name} differs"

"""The P4 program's architecture lives in one file, and its P4Runtime names never move.

The stages (``p4src/stages/*.p4``) are written against a target-neutral signature,
``(inout headers_t hdr, inout metadata_t meta)``; everything v1model-specific (its
externs, ``standard_metadata``, the ``V1Switch`` package) is reached through
``p4src/arch/v1model.p4``, the only source that declares ``main``.

``tests/p4info_names.txt`` lists every P4Info object (``kind id name``, sorted) as the
control plane knows it. A refactoring of the P4 sources must leave it unchanged. To
change it on purpose (a new table, a renamed action), rebuild with ``scripts/build-p4``
and regenerate it from the new build::

    .venv/bin/python -c "from tests.test_p4_arch import write_names; write_names()"

then review the diff: every changed line is a P4Runtime name or id the agent uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from finsy import P4Schema

from pyoffload.pipeline.artifacts import Artifacts, build_dir, load_constants

REPO = Path(__file__).resolve().parent.parent
P4SRC = REPO / "p4src"
STAGES = P4SRC / "stages"
ARCH_DIR = P4SRC / "arch"
ARCH_FILE = ARCH_DIR / "v1model.p4"
NAMES_FILE = Path(__file__).resolve().parent / "p4info_names.txt"

# The P4Info's repeated fields of named objects, and the kind each line gives them.
KINDS = {
    "tables": "table",
    "actions": "action",
    "action_profiles": "action_profile",
    "counters": "counter",
    "direct_counters": "direct_counter",
    "meters": "meter",
    "direct_meters": "direct_meter",
    "controller_packet_metadata": "controller_packet_metadata",
    "value_sets": "value_set",
    "registers": "register",
    "digests": "digest",
}

# v1model's names (its metadata, externs, enums and package): a stage using one of
# them would have to be forked for another architecture.
V1MODEL_NAMES = (
    "standard_metadata",
    "standard_metadata_t",
    "register",
    "counter",
    "direct_counter",
    "meter",
    "direct_meter",
    "hash",
    "clone",
    "clone3",
    "clone_preserving_field_list",
    "mark_to_drop",
    "digest",
    "verify_checksum",
    "update_checksum",
    "verify_checksum_with_payload",
    "update_checksum_with_payload",
    "random",
    "resubmit",
    "resubmit_preserving_field_list",
    "recirculate",
    "recirculate_preserving_field_list",
    "truncate",
    "log_msg",
    "assert",
    "assume",
    "action_selector",
    "action_profile",
    "HashAlgorithm",
    "CloneType",
    "MeterType",
    "CounterType",
    "V1Switch",
)
_V1MODEL_RE = re.compile(r"\b(" + "|".join(map(re.escape, V1MODEL_NAMES)) + r")\b")

# Today's layout of the conntrack ct_info register word (stages/conntrack.p4); the
# agent decodes the word with these numbers, read from the compiled constants.
CT_INFO_LAYOUT = {
    "CT_INFO_STATE_LSB": 0,
    "CT_INFO_STATE_WIDTH": 4,
    "CT_INFO_ORIG_HI_BIT": 4,
    "CT_INFO_KIND_LSB": 5,
    "CT_INFO_KIND_WIDTH": 2,
    "CT_INFO_XLATE_SRC_BIT": 7,
    "CT_INFO_XLATE_DST_BIT": 8,
    "CT_INFO_FIN_ORIG_BIT": 9,
    "CT_INFO_FIN_REPLY_BIT": 10,
    "CT_INFO_PROFILE_LSB": 16,
    "CT_INFO_PROFILE_WIDTH": 8,
}


def p4info_names(p4info_path: Path) -> list[str]:
    """One ``kind id name`` line per named object of a P4Info file, sorted."""
    p4info = P4Schema(p4info_path).p4info
    lines: list[str] = []
    for field, kind in KINDS.items():
        for entity in getattr(p4info, field):
            lines.append(f"{kind} {entity.preamble.id} {entity.preamble.name}")
    for extern in p4info.externs:
        for instance in extern.instances:
            lines.append(
                f"extern:{extern.extern_type_name} {instance.preamble.id} "
                f"{instance.preamble.name}"
            )
    return sorted(lines)


def write_names(p4info_path: Path | None = None) -> None:
    """Regenerate ``tests/p4info_names.txt`` from the committed default build."""
    path = p4info_path or Artifacts.in_dir(build_dir()).p4info
    NAMES_FILE.write_text("\n".join(p4info_names(path)) + "\n")


def strip_comments(text: str) -> str:
    """P4 source without its ``/* */`` and ``//`` comments (strings hold no ``//``)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


def v1model_mentions(path: Path) -> list[str]:
    """``line: name`` for every v1model name in the code of ``path`` (comments excluded:
    prose may say "register" or "meter"; code may not)."""
    found: list[str] = []
    code = strip_comments(path.read_text())
    for number, line in enumerate(code.splitlines(), start=1):
        found.extend(f"{number}: {m}" for m in _V1MODEL_RE.findall(line))
    return found


def p4_sources() -> list[Path]:
    return sorted(P4SRC.rglob("*.p4"))


@pytest.mark.parametrize("variant", ["", "large"])
def test_p4runtime_names_and_ids_are_unchanged(variant: str) -> None:
    expected = NAMES_FILE.read_text().splitlines()
    assert expected, f"{NAMES_FILE} is empty"
    actual = p4info_names(Artifacts.packaged(variant).p4info)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert actual == expected, (
        f"P4Info objects of build/{variant} changed: missing {missing}, new {extra} "
        "(on purpose? see the header of tests/test_p4_arch.py)"
    )


def test_stages_mention_no_v1model_name() -> None:
    stages = sorted(STAGES.glob("*.p4"))
    assert stages
    offending = {p.name: v1model_mentions(p) for p in stages}
    offending = {name: found for name, found in offending.items() if found}
    assert not offending, f"stages using v1model directly (use arch/ macros): {offending}"


def test_only_the_architecture_file_mentions_v1model_names() -> None:
    """Parser, deparser, checksums and the pipeline go through the architecture too."""
    outside = [p for p in p4_sources() if ARCH_DIR not in p.parents]
    assert outside
    offending = {str(p.relative_to(P4SRC)): v1model_mentions(p) for p in outside}
    offending = {name: found for name, found in offending.items() if found}
    assert not offending, f"v1model names outside p4src/arch/: {offending}"
    assert v1model_mentions(ARCH_FILE), "the architecture file uses no v1model name?"


def test_exactly_one_source_declares_main_and_it_is_the_architecture_file() -> None:
    declares_main = [
        p for p in p4_sources() if re.search(r"\bmain\s*;", strip_comments(p.read_text()))
    ]
    assert declares_main == [ARCH_FILE]


def test_compiled_constants_carry_the_ct_info_layout() -> None:
    constants = load_constants()
    assert {name: constants.get(name) for name in CT_INFO_LAYOUT} == CT_INFO_LAYOUT


def test_ct_info_layout_fields_do_not_overlap() -> None:
    """The layout constants describe disjoint bit ranges of a 32-bit word."""
    c = CT_INFO_LAYOUT
    fields = [
        (c["CT_INFO_STATE_LSB"], c["CT_INFO_STATE_WIDTH"]),
        (c["CT_INFO_ORIG_HI_BIT"], 1),
        (c["CT_INFO_KIND_LSB"], c["CT_INFO_KIND_WIDTH"]),
        (c["CT_INFO_XLATE_SRC_BIT"], 1),
        (c["CT_INFO_XLATE_DST_BIT"], 1),
        (c["CT_INFO_FIN_ORIG_BIT"], 1),
        (c["CT_INFO_FIN_REPLY_BIT"], 1),
        (c["CT_INFO_PROFILE_LSB"], c["CT_INFO_PROFILE_WIDTH"]),
    ]
    bits = [bit for lsb, width in fields for bit in range(lsb, lsb + width)]
    assert len(bits) == len(set(bits))
    assert max(bits) < 32

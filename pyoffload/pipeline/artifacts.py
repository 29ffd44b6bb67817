"""The compiled VNIC pipeline that ships with pyoffload, found as package data.

The P4 program (``p4src/`` in the source tree) is the single source of truth;
its compiled form (BMv2 JSON, P4Info in text format, the ``const``s of
``include/defines.p4``, and a stamp naming the sources and compiler they came
from) is committed under ``pyoffload/pipeline/build/`` and installed with the
package, so an installed pyoffload needs neither p4c nor its checkout. Whether
the artifacts still match the sources is a checkout-only question
(``devtools/p4stamp.py`` and its test).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import attrs

from pyoffload.errors import PyoffloadError

JSON_NAME = "vnic.json"
P4INFO_NAME = "vnic.p4info.txtpb"
CONSTANTS_NAME = "vnic.constants.json"
STAMP_NAME = "stamp.json"
VARIANTS: dict[str, tuple[str, ...]] = {
    "large": ("-DCT_SLOTS=1048576", "-DCT_OVERFLOW_SLOTS=16384"),
}
"""The same program compiled with other capacities (``include/sizes.p4``), each in
``build/<name>/`` with its own stamp: ``large`` tracks a million connections."""


class ArtifactError(PyoffloadError):
    """The compiled pipeline is missing, incomplete or does not match its sources."""


def build_dir(variant: str = "") -> Path:
    """Where the compiled artifacts of ``variant`` ("" for the default build) live."""
    if variant and variant not in VARIANTS:
        raise ArtifactError(
            f"no pipeline variant {variant!r}; the variants are: default, "
            + ", ".join(sorted(VARIANTS))
        )
    root = resources.files("pyoffload.pipeline").joinpath("build")
    if not isinstance(root, Path):  # a zipped install: P4Schema needs real files
        raise ArtifactError(
            "pyoffload's compiled pipeline is inside an archive; install pyoffload "
            "as files (pip install, not a zip import)"
        )
    return root / variant if variant else root


@attrs.frozen(kw_only=True)
class Artifacts:
    """Paths of one compiled pipeline."""

    bmv2_json: Path
    p4info: Path
    constants: Path
    stamp: Path

    @classmethod
    def in_dir(cls, directory: Path) -> Artifacts:
        return cls(
            bmv2_json=directory / JSON_NAME,
            p4info=directory / P4INFO_NAME,
            constants=directory / CONSTANTS_NAME,
            stamp=directory / STAMP_NAME,
        )

    @classmethod
    def packaged(cls, variant: str = "") -> Artifacts:
        """The pipeline installed with pyoffload, or an error naming what is missing."""
        artifacts = cls.in_dir(build_dir(variant))
        missing = [p.name for p in artifacts.outputs().values() if not p.is_file()]
        if missing:
            raise ArtifactError(
                f"the compiled pipeline in {artifacts.bmv2_json.parent} lacks "
                f"{', '.join(missing)}: this pyoffload installation is incomplete; "
                "reinstall it (in a checkout: `scripts/build-p4` with p4c installed)"
            )
        return artifacts

    def outputs(self) -> dict[str, Path]:
        return {p.name: p for p in (self.bmv2_json, self.p4info, self.constants)}


def load_constants(artifacts: Artifacts | None = None) -> dict[str, int]:
    """The pipeline's constants (verdicts, states, reasons) as compiled."""
    artifacts = artifacts or Artifacts.packaged()
    data: dict[str, int] = json.loads(artifacts.constants.read_text())
    return data

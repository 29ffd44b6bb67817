"""Throwaway certificate authorities and certificates for the TLS tests (``openssl``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CURVE = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> None:
    """NAME.key/NAME.crt: a self-signed CA, valid one day."""
    openssl("req", "-x509", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "1", "-subj", f"/CN={name}", cwd=directory)


def make_cert(directory: Path, name: str, ca: str, san: str) -> None:
    """NAME.key/NAME.crt for ``san``, signed by CA.key/CA.crt."""
    openssl("req", *CURVE, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=directory)
    (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext",
            cwd=directory)


def make_pki(directory: Path, certificates: dict[str, tuple[str, str]]) -> Path:
    """The CAs ``ca`` and ``rogue-ca`` and, for each name, a certificate (its CA, its
    subject alternative names); every file readable by all users (so is the caller's
    directory, for tests that drop to another user)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificates")
    for ca in ("ca", "rogue-ca"):
        make_ca(directory, ca)
    for name, (ca, san) in certificates.items():
        make_cert(directory, name, ca, san)
    for path in directory.iterdir():
        path.chmod(0o644)
    return directory

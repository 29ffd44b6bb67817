#!/usr/bin/env bash
# Regenerate the Python modules of the guest channel protocol from
# guest_shim/offload.proto: offload_pb2.py, offload_pb2.pyi, offload_pb2_grpc.py.
#
# Needs grpcio-tools in the Python used (default: the project's .venv):
#   .venv/bin/pip install 'grpcio-tools==1.75.1'
# That version bundles protoc for protobuf 6.31, so the generated code imports
# under any protobuf runtime 6.31 <= v < 7 (the root project pins 6.33).
# Run from anywhere; the generated files are committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
cd "$here"
# The proto is compiled as guest_shim/offload.proto so that the generated
# modules import each other as `from guest_shim import offload_pb2`.
"$python" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. --grpc_python_out=. \
    guest_shim/offload.proto
# The stubs use a bare `Mapping` in constructor arguments; let mypy --strict
# accept that in this one generated file instead of weakening it elsewhere.
stub=guest_shim/offload_pb2.pyi
{ echo "# mypy: disallow-any-generics=False"; cat "$stub"; } > "$stub.tmp" && mv "$stub.tmp" "$stub"
echo "regenerated: $(ls guest_shim/offload_pb2*.py*)"

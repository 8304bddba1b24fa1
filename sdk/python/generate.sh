#!/usr/bin/env bash
# Regenerates the gRPC stubs of proto/agent.proto inside the package.
#
#   sdk/python/generate.sh            # into sdk/python (the committed stubs)
#   sdk/python/generate.sh OUT_DIR    # into OUT_DIR/hyperraft_agent/_proto
#
# PYTHON names an interpreter with grpcio-tools installed (default python3).
# The proto is mapped to the virtual path hyperraft_agent/_proto/agent.proto,
# so the generated modules import each other as
# `from hyperraft_agent._proto import agent_pb2` and register under a name
# no other package uses.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here}"
python="${PYTHON:-python3}"
mkdir -p "$out/hyperraft_agent/_proto"
"$python" -m grpc_tools.protoc \
  "-Ihyperraft_agent/_proto=$root/proto" \
  "--python_out=$out" \
  "--grpc_python_out=$out" \
  "$root/proto/agent.proto"

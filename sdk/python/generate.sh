#!/usr/bin/env bash
# Regenerates the gRPC stubs of proto/agent.proto (and proto/bus.proto,
# which it imports) inside the package.
#
#   sdk/python/generate.sh            # into sdk/python (the committed stubs)
#   sdk/python/generate.sh OUT_DIR    # into OUT_DIR/hyperraft_agent/_proto
#
# PYTHON names an interpreter with grpcio-tools installed (default python3).
# The protos are compiled under the path hyperraft_agent/_proto/, with
# agent.proto's `import "bus.proto"` pointed there too, so the generated
# modules import each other as `from hyperraft_agent._proto import ...` and
# register under file names no other package uses.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here}"
python="${PYTHON:-python3}"
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/hyperraft_agent/_proto" "$out/hyperraft_agent/_proto"
cp "$root/proto/bus.proto" "$staging/hyperraft_agent/_proto/bus.proto"
sed 's#^import "bus.proto";#import "hyperraft_agent/_proto/bus.proto";#' \
  "$root/proto/agent.proto" > "$staging/hyperraft_agent/_proto/agent.proto"
cd "$staging"
"$python" -m grpc_tools.protoc -I. \
  "--python_out=$out" \
  "--grpc_python_out=$out" \
  hyperraft_agent/_proto/agent.proto hyperraft_agent/_proto/bus.proto

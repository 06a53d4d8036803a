#!/usr/bin/env bash
# Tests the Pulumi provider example, its own Go module: vet, then every test, the
# engine test included. It runs the Pulumi CLI and Pulumi YAML's language host (built
# once by hack/tools/pulumi/install.sh) against an in-process registry and an API
# server started by envtest from $KUBEBUILDER_ASSETS (hack/testbed.sh prints the
# directory; without it this script runs hack/testbed.sh). With CI=true a missing
# part fails.
#
#   examples/pulumi-provider/test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
start=$(date +%s)

SHIPKIT_PULUMI_DIR=$("$root/hack/tools/pulumi/install.sh" | tail -n 1)
export SHIPKIT_PULUMI_DIR
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  KUBEBUILDER_ASSETS=$("$root/hack/testbed.sh" | tail -n 1)
fi
export KUBEBUILDER_ASSETS

cd "$here"
echo "[pulumi-provider] go vet"
go vet ./...
echo "[pulumi-provider] go test (Pulumi $("$SHIPKIT_PULUMI_DIR/pulumi" version))"
go test -count=1 -timeout 30m ./...
echo "[pulumi-provider] done in $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# Tests the Terraform provider example, its own Go module: vet, then every test,
# acceptance tests included. Those run OpenTofu (built once by
# hack/tools/tofu/install.sh) against an in-process registry and an API server
# started by envtest from $KUBEBUILDER_ASSETS (hack/testbed.sh prints the directory;
# without it this script runs hack/testbed.sh). With CI=true a missing part fails.
#
#   examples/terraform-provider/test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
start=$(date +%s)

tofu=$("$root/hack/tools/tofu/install.sh" | tail -n 1)
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  KUBEBUILDER_ASSETS=$("$root/hack/testbed.sh" | tail -n 1)
fi
export KUBEBUILDER_ASSETS
export TF_ACC=1 TF_ACC_TERRAFORM_PATH="$tofu" TF_ACC_PROVIDER_HOST=registry.opentofu.org

cd "$here"
echo "[terraform-provider] go vet"
go vet ./...
echo "[terraform-provider] go test (OpenTofu $(TF_CLI_CONFIG_FILE=/dev/null "$tofu" version 2>/dev/null | head -n 1 | cut -d' ' -f2))"
go test -count=1 -timeout 20m ./...
echo "[terraform-provider] done in $(( $(date +%s) - start ))s"

#!/usr/bin/env bash
# The project's one test command (the README's; .ci/run calls it).
# Installs and starts nothing by hand: hack/testbed.sh installs the Debian packages and
# builds the control plane (cached), then this checks formatting, vet and lint and
# runs every test. In CI (CI=true) a missing part of the test bed fails its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

assets=$(hack/testbed.sh | tail -n 1)
export KUBEBUILDER_ASSETS="$assets"
echo "[test] test bed ready in $(( $(date +%s) - start ))s: $KUBEBUILDER_ASSETS"
# Everything is installed now: a test that finds a part of the test bed missing is a
# bug, so it must fail rather than skip, here as in CI.
export CI="${CI:-true}"

echo "[test] gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  printf 'gofmt would change:\n%s\n' "$unformatted" >&2
  exit 1
fi

echo "[test] go vet"
go vet ./...

hack/lint.sh

echo "[test] go test"
# -count=1: integration tests depend on servers and files the test cache cannot see.
go test -count=1 -timeout 40m ./...

# The Terraform provider example is its own Go module (the plugin framework stays out
# of the SDK's go.mod); its acceptance tests run OpenTofu against the same test bed.
examples/terraform-provider/test.sh
examples/pulumi-provider/test.sh  # likewise its own module; its engine test runs the Pulumi CLI and Pulumi YAML (built once) against the test bed
echo "[test] all done in $(( $(date +%s) - start ))s"

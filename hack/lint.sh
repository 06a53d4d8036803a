#!/usr/bin/env bash
# Runs golangci-lint at a pinned version, built from the Go module proxy once and
# cached under $SHIPKIT_CACHE (default ~/.cache/shipkit/tools). Lints ./... or the
# package patterns given: hack/lint.sh ./deploy/...
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v2.15.0
cache=${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}
bin="$cache/tools/golangci-lint-$VERSION"
if [ ! -x "$bin/golangci-lint" ]; then
  echo "[lint] building golangci-lint $VERSION (cold: a few minutes)" >&2
  GOBIN="$bin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$VERSION"
fi
echo "[lint] golangci-lint $VERSION"
"$bin/golangci-lint" run --allow-parallel-runners "${@:-./...}"

#!/usr/bin/env bash
# Builds the syft CLI at the version hack/bench/tools.go names, from the nested module
# hack/tools/anchore (a plain `go install` of it fails on this proxy); prints its path.
# A cold build takes several minutes on 2 cores.
set -euo pipefail
SYFT_VERSION=v1.57.0
here=$(cd "$(dirname "$0")" && pwd)
bin="$1/syft-$SYFT_VERSION"
if [ ! -x "$bin/syft" ]; then
  echo "[bench] building syft $SYFT_VERSION" >&2
  mkdir -p "$bin"
  (
    cd "$here/../../tools/anchore"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$SYFT_VERSION" \
      -o "$bin/syft.tmp" github.com/anchore/syft/cmd/syft
  )
  mv "$bin/syft.tmp" "$bin/syft"
fi
echo "$bin/syft"

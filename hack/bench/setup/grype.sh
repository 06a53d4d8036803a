#!/usr/bin/env bash
# Builds the grype CLI at the version hack/bench/tools.go names, from the nested module
# hack/tools/anchore (a plain `go install` of it fails on this proxy); prints its path.
# A cold build takes several minutes on 2 cores.
set -euo pipefail
GRYPE_VERSION=v0.121.2
here=$(cd "$(dirname "$0")" && pwd)
bin="$1/grype-$GRYPE_VERSION"
if [ ! -x "$bin/grype" ]; then
  echo "[bench] building grype $GRYPE_VERSION" >&2
  mkdir -p "$bin"
  (
    cd "$here/../../tools/anchore"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$GRYPE_VERSION" \
      -o "$bin/grype.tmp" github.com/anchore/grype/cmd/grype
  )
  mv "$bin/grype.tmp" "$bin/grype"
fi
echo "$bin/grype"

#!/usr/bin/env bash
# Installs the peer tools the benchmark compares shipkit with, at pinned versions,
# under $SHIPKIT_CACHE/tools (default ~/.cache/shipkit/tools). Versions match tools.go.
set -euo pipefail
KO_VERSION=v0.19.1
cache=${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}
bin="$cache/tools/ko-$KO_VERSION"
if [ ! -x "$bin/ko" ]; then
  echo "[bench] installing ko $KO_VERSION" >&2
  GOBIN="$bin" go install "github.com/google/ko@$KO_VERSION"
fi
echo "$bin/ko"

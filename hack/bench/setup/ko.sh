#!/usr/bin/env bash
# Installs ko at the version hack/bench/tools.go names; prints its path.
set -euo pipefail
KO_VERSION=v0.19.1
bin="$1/ko-$KO_VERSION"
if [ ! -x "$bin/ko" ]; then
  echo "[bench] installing ko $KO_VERSION" >&2
  GOBIN="$bin" go install "github.com/google/ko@$KO_VERSION"
fi
echo "$bin/ko"

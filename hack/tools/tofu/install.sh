#!/usr/bin/env bash
# Builds the OpenTofu CLI (cmd/tofu) from this nested module once and prints its path:
#
#   tofu=$(hack/tools/tofu/install.sh)
#
# The binary is cached under $SHIPKIT_CACHE (default ~/.cache/shipkit), keyed by the
# version below, which must match the require line in go.mod; a warm run only prints
# the path. The build goes to a temporary file and is renamed into place, so an
# interrupted build never leaves a half-written binary behind. Cold: ~6 min on 2 cores.
set -euo pipefail
TOFU_VERSION=v1.10.10

here=$(cd "$(dirname "$0")" && pwd)
cache=${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}
dir="$cache/tools/tofu-$TOFU_VERSION"
bin="$dir/tofu"

if ! grep -q "github.com/opentofu/opentofu $TOFU_VERSION" "$here/go.mod"; then
  echo "install.sh: TOFU_VERSION=$TOFU_VERSION does not match $here/go.mod" >&2
  exit 1
fi

if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.tofu.build.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  echo "[tofu] building OpenTofu $TOFU_VERSION (cold: several minutes on 2 cores)" >&2
  start=$(date +%s)
  (
    cd "$here"
    # dev=no drops the "-dev" suffix so `tofu version` reports the release it is.
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
      -o "$tmp" github.com/opentofu/opentofu/cmd/tofu
  )
  chmod 0755 "$tmp"
  mv -f "$tmp" "$bin"
  echo "[tofu] built in $(( $(date +%s) - start ))s" >&2
fi
echo "$bin"

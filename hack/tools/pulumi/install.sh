#!/usr/bin/env bash
# Builds the Pulumi CLI (pkg/v3/cmd/pulumi, from this nested module) and Pulumi YAML's
# language host (pulumi-language-yaml) once, into one directory, and prints its path:
#
#   dir=$(hack/tools/pulumi/install.sh)   # $dir/pulumi, $dir/pulumi-language-yaml
#
# The binaries are cached under $SHIPKIT_CACHE (default ~/.cache/shipkit), keyed by
# the versions below (PULUMI_VERSION must match the require line in go.mod); a warm run
# only prints the path. The language host cannot share this module: pulumi-yaml
# v1.25.0 is written against pkg/v3 v3.206.0, whose plugin API v3.276.0 changed, so it
# is built with `go install ...@v1.25.0` from its own go.mod (no replace lines there).
# The language host protocol is stable across these versions, which is how Pulumi
# ships them too. The build goes to a temporary directory renamed into place, so an
# interrupted build never leaves a half-written binary behind.
set -euo pipefail
PULUMI_VERSION=v3.276.0
PULUMI_YAML_VERSION=v1.25.0

here=$(cd "$(dirname "$0")" && pwd)
cache=${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}
dir="$cache/tools/pulumi-$PULUMI_VERSION"

if ! grep -q "github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION" "$here/go.mod"; then
  echo "install.sh: PULUMI_VERSION=$PULUMI_VERSION does not match $here/go.mod" >&2
  exit 1
fi

if [ ! -x "$dir/pulumi" ] || [ ! -x "$dir/pulumi-language-yaml" ] || [ "$(cat "$dir/.yaml-version" 2>/dev/null)" != "$PULUMI_YAML_VERSION" ]; then
  mkdir -p "$cache/tools"
  tmp=$(mktemp -d "$cache/tools/.pulumi.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "[pulumi] building Pulumi $PULUMI_VERSION and pulumi-language-yaml $PULUMI_YAML_VERSION (cold: many minutes on 2 cores)" >&2
  start=$(date +%s)
  # The version variables make `pulumi version` and the language host's plugin info
  # report the releases they are.
  (
    cd "$here"
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
      -o "$tmp/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  )
  (
    cd "$tmp"
    CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=$PULUMI_YAML_VERSION" \
      "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml@$PULUMI_YAML_VERSION"
  )
  echo "$PULUMI_YAML_VERSION" > "$tmp/.yaml-version"
  chmod 0755 "$tmp" "$tmp/pulumi" "$tmp/pulumi-language-yaml"
  rm -rf "$dir"
  mv -f "$tmp" "$dir"
  echo "[pulumi] built in $(( $(date +%s) - start ))s" >&2
fi
echo "$dir"

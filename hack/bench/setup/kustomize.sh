#!/usr/bin/env bash
# Installs the kustomize CLI at the version hack/bench/chain.go names: v5.8.2 is the
# release built on sigs.k8s.io/kustomize/api v0.21.2, the version deploy/render links.
# Prints its path.
set -euo pipefail
KUSTOMIZE_VERSION=v5.8.2
bin="$1/kustomize-$KUSTOMIZE_VERSION"
if [ ! -x "$bin/kustomize" ]; then
  echo "[bench] installing kustomize $KUSTOMIZE_VERSION" >&2
  GOBIN="$bin" CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
echo "$bin/kustomize"

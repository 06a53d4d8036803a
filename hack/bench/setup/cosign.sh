#!/usr/bin/env bash
# Installs the cosign CLI at the version hack/bench/sign.go names; prints its path.
# hack/testbed.sh installs the same version to the same place for the sign stage's
# interoperability tests, so whichever runs first does the work.
set -euo pipefail
COSIGN_VERSION=v2.6.5
bin="$1/cosign-$COSIGN_VERSION"
if [ ! -x "$bin/cosign" ]; then
  echo "[bench] installing cosign $COSIGN_VERSION" >&2
  GOBIN="$bin" go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
fi
echo "$bin/cosign"

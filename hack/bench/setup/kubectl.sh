#!/usr/bin/env bash
# Builds kubectl at the test control plane's Kubernetes version from the nested module
# hack/tools/kube (k8s.io/kubernetes/cmd/kubectl, a tool of that module), stamped with
# its version the way hack/testbed.sh stamps the control plane; prints its path.
set -euo pipefail
K8S_VERSION=v1.34.4 # hack/testbed.sh's K8S_VERSION; hack/bench/tools.go names the same
bin="$1/kubectl-$K8S_VERSION"
if [ ! -x "$bin/kubectl" ]; then
  echo "[bench] building kubectl $K8S_VERSION" >&2
  root=$(cd "$(dirname "$0")/../../.." && pwd)
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$bin"
  tmp=$(mktemp -d "$bin.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$root/hack/tools/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl)
  mv "$tmp/kubectl" "$bin/kubectl"
fi
echo "$bin/kubectl"

#!/usr/bin/env bash
# Installs and builds every part of the integration test bed, idempotently:
#   - Debian packages: docker-registry (CNCF distribution), prometheus, ca-certificates
#   - the Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd)
#     built from the Go module proxy in the nested module hack/tools/kube, plus kwok for fake nodes;
#   - the cosign CLIs (v2 and v3), for the sign stage's interoperability tests;
#   - the Helm CLI, built from this module's go.mod (the helm.sh/helm/v4 that deploy/render/helm
#     uses), for the helm template comparison tests.
# Binaries are cached under $SHIPKIT_CACHE (default ~/.cache/shipkit) keyed by their versions, so a
# warm run costs nothing. Prints the KUBEBUILDER_ASSETS directory on its last line.
set -euo pipefail

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
KWOK_VERSION=v0.8.0
COSIGN_VERSION=v2.6.5 # the sign stage's interoperability tests run the cosign CLIs: v2 (legacy layout)
COSIGN3_VERSION=v3.1.3 # and v3 (sigstore bundles in OCI 1.1 referrers)
HELM_VERSION=v4.3.2   # must be go.mod's helm.sh/helm/v4: deploy/render/helm's tests compare with its CLI

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${SHIPKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shipkit}
assets="$cache/testbed/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"

log() { printf '[testbed] %s\n' "$*" >&2; }

install_debs() {
  local missing=()
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates) # the Go module proxy is HTTPS
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # The packages start their own services; the tests start private instances instead.
  for svc in docker-registry prometheus prometheus-node-exporter; do
    $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
    $sudo service "$svc" stop >/dev/null 2>&1 || true
  done
}

build_control_plane() {
  local bin="$assets"
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ] \
    && [ -x "$bin/etcd" ] && [ -x "$bin/kwok" ] && [ -f "$bin/kwok-stages/pod-delete.yaml" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$bin")"
  local tmp; tmp=$(mktemp -d "$bin.build.XXXXXX")
  trap 'rm -rf "${tmp:-}"' RETURN
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  log "building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION (cold: ~15-20 min on 2 cores)"
  (
    cd "$root/hack/tools/kube"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
  )
  log "building kwok $KWOK_VERSION"
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local kwokmod; kwokmod=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION
  mkdir -p "$tmp/kwok-stages"
  # Explicit paths: pod/general has files of the same names that need a pod-create stage.
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cp "$kwokmod/kustomize/stage/$f.yaml" "$tmp/kwok-stages/"
  done
  chmod -R u+w "$tmp/kwok-stages"
  chmod 755 "$tmp"
  # Replace the whole directory, so a partial cache from an interrupted run cannot remain.
  rm -rf "$bin"
  mv "$tmp" "$bin"
}

install_tools() {
  local bin="$cache/tools/cosign-$COSIGN_VERSION"
  if [ ! -x "$bin/cosign" ]; then
    log "installing cosign $COSIGN_VERSION"
    GOBIN="$bin" go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"
  fi
  # cosign v3 installs from the module proxy as is (its go.mod needs no replace);
  # a cold build took 31 min wall, 7.6 CPU-min, on a machine at load ~30.
  bin="$cache/tools/cosign-$COSIGN3_VERSION"
  if [ ! -x "$bin/cosign" ]; then
    log "installing cosign $COSIGN3_VERSION"
    GOBIN="$bin" go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN3_VERSION"
  fi
  bin="$cache/tools/helm-$HELM_VERSION"
  if [ ! -x "$bin/helm" ]; then
    local have
    have=$(cd "$root" && go list -m -f '{{.Version}}' helm.sh/helm/v4)
    if [ "$have" != "$HELM_VERSION" ]; then
      log "go.mod has helm.sh/helm/v4 $have, not $HELM_VERSION: update HELM_VERSION here and in deploy/render/helm's tests"
      return 1
    fi
    log "building the helm CLI $HELM_VERSION from go.mod"
    # From this module's graph, so its packages are the ones the tests build (one compile, shared cache).
    mkdir -p "$bin"
    (cd "$root" && go build -o "$bin/helm.tmp" helm.sh/helm/v4/cmd/helm)
    mv "$bin/helm.tmp" "$bin/helm"
  fi
}

install_debs
build_control_plane
install_tools
echo "$assets"

#!/usr/bin/env bash
# Builds the binaries of the Argo CD test harness (ci/testsupport/argocdharness) once per version into
# a cache outside the repository, and does nothing when they are there. Cold: ~20 min and ~3 min of
# module downloads on 2 cores; warm: a second.
#   kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes v1.34.8) and etcd v3.6.10
#     from hack/e2e/k8s (its go.mod maps the staging modules to v0.34.8 — but cri-api, externaljwt, kube-proxy
#     and the three sample modules, which the Go module proxy does not serve at v0.34.8: v0.34.4); the
#     versions of kwok v0.8.0's cluster image for Kubernetes 1.34, which the sandbox runs (sandbox/layout);
#   argocd v2.14.21 (server, repo-server, application-controller in one binary) from hack/e2e/argocd;
#   the Argo Rollouts controller v1.10.1 (the sandbox's quay.io/argoproj/argo-rollouts image) from
#     hack/e2e/rollouts (its go.mod carries argo-rollouts' own replace block);
#   kwok v0.8.0, kustomize v5.8.0 (the repo-server renders overlays with it) and Mailpit v1.33.1 (the
#   sandbox's mail, tested on the host) with go install.
set -euo pipefail
cd "$(dirname "$0")"
versions=k8s-v1.34.8_etcd-v3.6.10_argocd-v2.14.21_kwok-v0.8.0   # = argocdharness.Versions
bin=${WANDERLUST_E2E_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/wanderlust/e2e/$versions/bin}
mkdir -p "$bin"

have() { [ -x "$bin/$1" ]; }
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=v1.34.8 -X $pkg.gitMajor=1 -X $pkg.gitMinor=34"
done

for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
  if ! have "$cmd"; then
    echo "building $cmd into $bin"
    (cd k8s && go build -ldflags "$k8s_ldflags" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  fi
done
if ! have etcd; then
  echo "building etcd into $bin"
  (cd k8s && go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
fi
# Stamped with its version (as Argo CD's Makefile does), so that the API and UI say v2.14.21 rather than
# v99.99.99; a binary built before the stamp is rebuilt.
argocd_ldflags="-s -w -X github.com/argoproj/argo-cd/v2/common.version=2.14.21"
if ! have argocd || ! "$bin/argocd" version --client --short 2>/dev/null | grep -q 'v2\.14\.21'; then
  echo "building argocd into $bin"
  (cd argocd && go build -ldflags "$argocd_ldflags" -o "$bin/argocd" github.com/argoproj/argo-cd/v2/cmd)
fi
# Stamped with its version, as Argo Rollouts' Makefile does.
rollouts_ldflags="-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=1.10.1"
if ! have rollouts-controller; then
  echo "building rollouts-controller into $bin"
  (cd rollouts && go build -ldflags "$rollouts_ldflags" -o "$bin/rollouts-controller" github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
fi
have kwok || GOBIN="$bin" go install -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok@v0.8.0
have kustomize || GOBIN="$bin" go install -ldflags "-s -w" sigs.k8s.io/kustomize/kustomize/v5@v5.8.0
have mailpit || GOBIN="$bin" go install -ldflags "-s -w" github.com/axllent/mailpit@v1.33.1
echo "argocd harness binaries ready in $bin"


#!/usr/bin/env bash
# Builds the local Sigstore of the keyless tests (ci/cmd/gitops/internal/sigstorestack) from their Go
# modules, once, into a cache outside the repository: Fulcio (file CA), rekor-tiles (Rekor v2, POSIX
# storage), the timestamp authority, and cosign v3 — the independent verifier and signer of bundles.
# ~7 min cold on 2 cores, then instant. Versions: sigstorestack.Versions.
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/wanderlust
dir="$cache/sigstore/fulcio-v1.8.8_rekor-tiles-v2.3.0_tsa-v2.1.3"
cosign_dir="$cache/cosign/v3.1.3"
build() { # dir name package@version
  [ -x "$1/$2" ] && return
  local tmp; tmp=$(mktemp -d)
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "$3"
  mkdir -p "$1"; mv "$tmp/$(basename "${3%@*}")" "$1/$2"; rm -rf "$tmp"
}
build "$dir" fulcio github.com/sigstore/fulcio@v1.8.8
build "$dir" rekor-server github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@v2.3.0
build "$dir" timestamp-server github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@v2.1.3
build "$cosign_dir" cosign github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3
echo "sigstore ready in $dir, cosign v3 in $cosign_dir"

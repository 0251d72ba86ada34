#!/usr/bin/env bash
# Builds the real cosign CLI, the tests' independent verifier of our signatures and attestations
# (ci/testsupport/cosigncli), once into a cache outside the repository. ~2 min cold, then instant.
set -euo pipefail
cosign_dir=${XDG_CACHE_HOME:-$HOME/.cache}/wanderlust/cosign/v2.6.5   # = cosigncli.Version
[ -x "$cosign_dir/cosign" ] || GOBIN="$cosign_dir" go install -ldflags "-s -w" github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
echo "cosign ready in $cosign_dir"

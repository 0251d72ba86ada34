#!/usr/bin/env bash
# Tidies both go.mod files. ci/go.mod must not require dagger.io/dagger (the code `dagger develop`
# generates does not import it), so the stub files are set aside while ci/go.mod is tidied.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod tidy
tmp=$(mktemp -d)
restore() {
  [ -e "$tmp/dagger.gen.go" ] && mv "$tmp/dagger.gen.go" ci/dagger.gen.go
  [ -e "$tmp/dagger" ] && mv "$tmp/dagger" ci/internal/dagger
  rmdir "$tmp" 2>/dev/null || true
}
trap restore EXIT
if head -1 ci/dagger.gen.go 2>/dev/null | grep -q daggerstub; then
  mv ci/dagger.gen.go "$tmp/" && mv ci/internal/dagger "$tmp/"
fi
(cd ci && go mod tidy -e 2>&1 | grep -v -e 'internal/dagger' -e 'wanderlust.dev/pipeline/ci imports' || true)

#!/usr/bin/env bash
# Tidies the root go.mod, ci/go.mod as `dagger develop` leaves it, and the GitOps program's module.
#
# `dagger develop` (engine v0.21.8) runs `go mod tidy` in ci/ with its generated code in place, which
# imports the packages listed below (querybuilder, genqlient, gqlparser, dagger/otel-go, the
# OpenTelemetry API and SDK). A plain `go mod tidy` next to the engine-free stub would tidy against the
# stub instead (and require dagger.io/dagger). So ci/go.mod is tidied with the stub set aside and a
# stand-in internal/dagger package that imports exactly what the generated code imports; a fresh
# clone then stays clean after `dagger develop` (hack/daggerstub's TestStubBuildsWithTheEnginesVersions
# and ci's TestTheModuleLeavesArgoCDAndKubernetesToTheProgram check the result).
set -euo pipefail
cd "$(dirname "$0")/.."
# (the root go.mod is tidied by hand: it pins sigstore for the bench tools)

ci=ci
aside=$(mktemp -d)
restore() {
  rm -f "$ci/internal/dagger/generated_imports.go"
  [ -f "$aside/dagger.gen.go" ] && mv "$aside/dagger.gen.go" "$ci/dagger.gen.go"
  [ -f "$aside/internal.dagger.gen.go" ] && mv "$aside/internal.dagger.gen.go" "$ci/internal/dagger/dagger.gen.go"
  rm -rf "$aside"
}
trap restore EXIT
if head -1 "$ci/dagger.gen.go" 2>/dev/null | grep -q 'hack/daggerstub'; then
  mv "$ci/dagger.gen.go" "$aside/dagger.gen.go"
  mv "$ci/internal/dagger/dagger.gen.go" "$aside/internal.dagger.gen.go"
fi
mkdir -p "$ci/internal/dagger"
cat > "$ci/internal/dagger/generated_imports.go" <<'GO'
// Package dagger stands in for the code `dagger develop` generates, for `go mod tidy` only.
package dagger

import (
	_ "github.com/Khan/genqlient/graphql"
	_ "github.com/dagger/otel-go"
	_ "github.com/dagger/querybuilder"
	_ "github.com/vektah/gqlparser/v2/gqlerror"
	_ "go.opentelemetry.io/otel"
	_ "go.opentelemetry.io/otel/propagation"
	_ "go.opentelemetry.io/otel/sdk/resource"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "go.opentelemetry.io/otel/trace"
)
GO
(cd "$ci" && go mod tidy)
restore
trap - EXIT
(cd "$ci/cmd/gitops" && go mod tidy)
go run ./hack/daggerstub
go test -count=1 -run TestStubBuildsWithTheEnginesVersions ./hack/daggerstub

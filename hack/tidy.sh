#!/usr/bin/env bash
# Tidies the root go.mod and checks ci/go.mod.
#
# ci/go.mod is what `dagger develop` (engine v0.21.8) writes: the codegen adds requirements that only
# its generated code imports (dagger/otel-go, querybuilder, genqlient, gqlparser, the OpenTelemetry
# SDK and exporters, four replaces of the OTel log packages). A plain `go mod tidy` in ci/ would drop
# them and make our tests compile other versions than the engine does, so it is not run here: add a
# dependency to the module with `cd ci && go get MODULE@VERSION`, then `make stub` (which tidies the
# stub's own ci/go.stub.mod). hack/daggerstub's TestStubBuildsWithTheEnginesVersions checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod tidy
go run ./hack/daggerstub
go test -count=1 -run TestStubBuildsWithTheEnginesVersions ./hack/daggerstub

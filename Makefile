# The project's two entry points for developers and CI:
#   make test    everything, on a machine with Go and git only (no Dagger engine needed): both Go
#                modules of ci/ (the Dagger module, and the GitOps program in ci/cmd/gitops)
#   make bench   the benchmarks, printing one "BENCH P<n> key=value…" line per goal
# Dagger's Go codegen reads ci/go.mod only, and the code it generates does not import dagger.io/dagger.
# So the module is compile-checked against aliases of the published SDK, written by hack/daggerstub
# with a module file of its own (ci/go.stub.mod). Where `dagger develop` generated the real code,
# the stub steps aside and ci/go.mod is used as is.
GO ?= go
CI_MODFILE = $(if $(wildcard ci/go.stub.mod),-modfile=go.stub.mod,)

.PHONY: test bench stub vet lint tidy e2e-tools fuzz

stub:
	$(GO) run ./hack/daggerstub

lint: stub
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd ci && $(GO) vet $(CI_MODFILE) ./...
	cd ci/cmd/gitops && $(GO) vet ./...

# The Argo CD tests need the harness binaries (built once into ~/.cache by hack/e2e/build.sh) and
# redis-server; WANDERLUST_E2E makes a missing binary a failure rather than a skip.
test: lint e2e-tools
	$(GO) test -count=1 ./...
	# -p 1: one package at a time, so that the two packages that start an Argo CD harness (argocd,
	# deploy) do not compete for the 2 cores.
	cd ci && WANDERLUST_E2E=1 $(GO) test -p 1 -count=1 -timeout 30m $(CI_MODFILE) ./...
	# The GitOps program (ci/cmd/gitops): a Go module of its own, so that Argo CD and Kubernetes stay
	# out of the Dagger module's Go graph; its stages' end-to-end tests run the Argo CD harness.
	cd ci/cmd/gitops && WANDERLUST_E2E=1 $(GO) test -p 1 -count=1 -timeout 40m ./...

e2e-tools:
	hack/e2e/build.sh
	hack/e2e/cosign.sh
	hack/e2e/sigstore.sh

bench: stub e2e-tools
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/
	cd ci/cmd/gitops && WANDERLUST_E2E=1 $(GO) test -run '^$$' -bench BenchmarkArgoCD -benchtime 1x -timeout 30m ./stages/argocd/
	cd ci/cmd/gitops && WANDERLUST_E2E=1 $(GO) test -run '^$$' -bench BenchmarkCanary -benchtime 1x -timeout 30m ./stages/deploy/
	cd ci/cmd/gitops && WANDERLUST_E2E=1 $(GO) test -run '^$$' -bench BenchmarkKeyless -benchtime 1x -timeout 10m ./stages/keyless/
	cd ci && WANDERLUST_E2E=1 $(GO) test -run '^$$' -bench BenchmarkSandbox -benchtime 1x -timeout 30m $(CI_MODFILE) ./sandbox/

tidy:
	hack/tidy.sh

# Fuzz the manifest edits against kustomize's renderer, FUZZTIME per target (make test replays the
# seeds and the committed corpora under ci/stages/manifest/testdata/fuzz).
FUZZTIME ?= 30s
FUZZFLAGS ?=
FUZZ_TARGETS ?= FuzzKustomizationEdit FuzzWorkloadEdit FuzzValues
fuzz: stub
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		(cd ci && $(GO) test $(CI_MODFILE) -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -timeout 0 $(FUZZFLAGS) ./stages/manifest/) || exit 1; \
	done

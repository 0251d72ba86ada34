package sandbox_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
)

var update = flag.Bool("update", false, "rewrite argocd-bootstrap.yaml and rollouts-crds.yaml from the argo-cd and argo-rollouts modules' manifests")

// bootstrapManifests extracts from the argo-cd module's manifests/ what InstallArgoCD installs: the
// Application and AppProject CRDs as published, and install.yaml's ConfigMaps and Secrets but the
// notifications' ones.
func bootstrapManifests(t *testing.T, dir string) string {
	t.Helper()
	parts := []string{"# Generated from github.com/argoproj/argo-cd/v2@" + strings.TrimPrefix(argocdVersion(t), "v") +
		" manifests/ by TestBootstrapManifestsAreArgoCDs -update: do not edit.\n"}
	for _, crd := range []string{"application-crd.yaml", "appproject-crd.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, "crds", crd))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	install, err := os.ReadFile(filepath.Join(dir, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := sandbox.YAMLDocs(string(install))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if kind := d.GetKind(); kind != "ConfigMap" && kind != "Secret" || strings.HasPrefix(d.GetName(), "argocd-notifications") {
			continue
		}
		s, err := d.String()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "---\n")
}

func argocdVersion(t *testing.T) string {
	dir, err := argocdharness.ArgoManifests()
	if err != nil {
		t.Fatal(err)
	}
	// …/github.com/argoproj/argo-cd/v2@v2.14.21/manifests
	_, v, _ := strings.Cut(filepath.Base(filepath.Dir(dir)), "@")
	return v
}

// The sandbox installs exactly Argo CD's own CRDs and configuration, of the version the GitOps
// program's client and the sandbox's image are.
func TestBootstrapManifestsAreArgoCDs(t *testing.T) {
	dir, err := argocdharness.ArgoManifests()
	if err != nil {
		t.Fatal(err)
	}
	want := bootstrapManifests(t, dir)
	if *update {
		if err := os.WriteFile("argocd-bootstrap.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if sandbox.ArgoCDManifests != want {
		t.Error("argocd-bootstrap.yaml differs from the argo-cd module's manifests: go test ./sandbox -run TestBootstrapManifestsAreArgoCDs -update")
	}
	docs, err := sandbox.YAMLDocs(sandbox.ArgoCDManifests)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, d := range docs {
		kinds[d.GetKind()+"/"+d.GetName()] = true
	}
	for _, k := range []string{"CustomResourceDefinition/applications.argoproj.io", "CustomResourceDefinition/appprojects.argoproj.io",
		"ConfigMap/argocd-cm", "ConfigMap/argocd-rbac-cm", "Secret/argocd-secret"} {
		if !kinds[k] {
			t.Errorf("the bootstrap lacks %s", k)
		}
	}
}

// The sandbox and the harness install exactly Argo Rollouts' own CRDs, of the version the harness's
// controller is built from and the sandbox's image is.
func TestRolloutsCRDsAreArgoRollouts(t *testing.T) {
	dir, err := argocdharness.RolloutsManifests()
	if err != nil {
		t.Fatal(err)
	}
	// …/github.com/argoproj/argo-rollouts@v1.10.1/manifests
	_, version, _ := strings.Cut(filepath.Base(filepath.Dir(dir)), "@")
	if version != layout.RolloutsVersion {
		t.Fatalf("hack/e2e/rollouts builds argo-rollouts %s, the sandbox runs %s", version, layout.RolloutsVersion)
	}
	parts := []string{"# Generated from github.com/argoproj/argo-rollouts@" + version + " manifests/crds by TestRolloutsCRDsAreArgoRollouts -update: do not edit.\n"}
	var names []string
	for _, crd := range []string{"rollout-crd.yaml", "analysis-run-crd.yaml", "analysis-template-crd.yaml", "cluster-analysis-template-crd.yaml", "experiment-crd.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, "crds", crd))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
		names = append(names, crd)
	}
	want := strings.Join(parts, "---\n")
	if *update {
		if err := os.WriteFile("rollouts-crds.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if sandbox.RolloutsCRDs != want {
		t.Errorf("rollouts-crds.yaml differs from the argo-rollouts module's %v: go test ./sandbox -run TestRolloutsCRDsAreArgoRollouts -update", names)
	}
	docs, err := sandbox.YAMLDocs(sandbox.RolloutsCRDs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range docs {
		got[d.GetKind()+"/"+d.GetName()] = true
	}
	for _, k := range []string{"rollouts", "analysisruns", "analysistemplates", "clusteranalysistemplates", "experiments"} {
		if !got["CustomResourceDefinition/"+k+".argoproj.io"] {
			t.Errorf("the CRDs lack %s.argoproj.io", k)
		}
	}
}

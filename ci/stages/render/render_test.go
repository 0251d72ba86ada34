package render

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// A directory without a kustomization renders as Argo CD reads a directory source: every YAML file
// in it; a Deployment without progressDeadlineSeconds has Kubernetes' 600 s.
func TestRenderPlainDirectoryAndProgressDeadline(t *testing.T) {
	fsys := fstest.MapFS{
		"k/plain/app.yaml":   {Data: []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template: {}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\n")},
		"k/plain/README.md":  {Data: []byte("not a manifest")},
		"k/plain/sub/x.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nested\n")},
	}
	r, err := Render(fsys, "k/plain")
	if err != nil {
		t.Fatal(err)
	}
	dep := Resource{Group: "apps", Kind: "Deployment", Name: "api"}
	if len(r) != 2 || r.ProgressDeadline([]Resource{dep}) != 600 || r.ProgressDeadline([]Resource{{Kind: "Service", Name: "api"}}) != 0 {
		t.Fatalf("rendered %d objects, deadline %d", len(r), r.ProgressDeadline([]Resource{dep}))
	}
	if _, ok := r.Lookup(Resource{Group: "apps", Kind: "Deployment", Namespace: "prod", Name: "api"}); !ok {
		t.Error("an object without a namespace is not found in its application's namespace")
	}
	before := Rendered{dep: "a", {Kind: "Service", Name: "api"}: "s"}
	after := Rendered{dep: "b", {Kind: "ConfigMap", Name: "new"}: "c"}
	if c := Changed(before, after); len(c) != 3 {
		t.Errorf("changed %v: want the modified, the added and the removed object", c)
	}
}

// prod rolls out through Argo Rollouts that reference its Deployments (kubernetes/components/canary):
// a new backend image changes the backend's Deployment and so what Rollout/backend runs — and
// nothing the frontend's Rollout runs; the Rollout's deadline is the one the wait uses.
func TestAChangedDeploymentChangesTheRolloutThatRunsIt(t *testing.T) {
	tree := os.DirFS("../../..")
	before, err := Render(tree, "kubernetes/overlays/prod")
	if err != nil {
		t.Fatal(err)
	}
	k, err := fs.ReadFile(tree, "kubernetes/overlays/prod/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bumped := fstest.MapFS{}
	if err := fs.WalkDir(tree, "kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(tree, p)
		bumped[p] = &fstest.MapFile{Data: b}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(k), "- name: ghcr.io/wanderlust-app/wanderlust-backend\n    newTag: \"1.0.0\"", "- name: ghcr.io/wanderlust-app/wanderlust-backend\n    newTag: \"2.0.0\"", 1)
	if s == string(k) {
		t.Fatal("the prod overlay no longer pins the backend at 1.0.0")
	}
	bumped["kubernetes/overlays/prod/kustomization.yaml"] = &fstest.MapFile{Data: []byte(s)}
	after, err := Render(bumped, "kubernetes/overlays/prod")
	if err != nil {
		t.Fatal(err)
	}
	ns := "wanderlust-prod"
	dep := Resource{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "backend"}
	ro := Resource{Group: "argoproj.io", Kind: "Rollout", Namespace: ns, Name: "backend"}
	changed := Changed(before, after)
	if !slices.Contains(changed, dep) || !slices.Contains(changed, ro) || len(changed) != 2 {
		t.Fatalf("changed %v: want the backend's Deployment and the Rollout that runs it, nothing else", changed)
	}
	if got := after.Referencing([]Resource{{Group: "apps", Kind: "Deployment", Namespace: ns, Name: "frontend"}}); len(got) != 1 || got[0].Name != "frontend" {
		t.Errorf("the frontend's Deployment is run by %v", got)
	}
	if d := after.ProgressDeadline(changed); d != 120 {
		t.Errorf("deadline %d, want the Rollout's and Deployment's 120", d)
	}
}

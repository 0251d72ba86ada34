package render

import (
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

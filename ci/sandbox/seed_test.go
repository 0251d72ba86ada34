package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/stages/render"
)

// The sandbox's repository deploys every overlay with a short progress deadline — for prod's Argo
// Rollouts too, so that a canary that never becomes Ready aborts itself in seconds, not minutes.
func TestSeedShortensEveryProgressDeadline(t *testing.T) {
	dst := t.TempDir()
	if err := sandbox.Seed(dst, "../../kubernetes"); err != nil {
		t.Fatal(err)
	}
	rollouts := 0
	for _, env := range []string{"dev", "staging", "prod"} {
		r, err := render.Render(os.DirFS(dst), filepath.Join("kubernetes/overlays", env))
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		for res, doc := range r {
			if res.Kind != "Deployment" && res.Kind != "Rollout" {
				continue
			}
			rollouts += map[bool]int{true: 1}[res.Kind == "Rollout"]
			n, err := yaml.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			v, err := n.Pipe(yaml.Lookup("spec", "progressDeadlineSeconds"))
			if err != nil || v == nil || yaml.GetValue(v) != fmt.Sprint(sandbox.ProgressDeadline) {
				t.Errorf("%s: %s has progress deadline %v, want %d", env, res, v, sandbox.ProgressDeadline)
			}
		}
	}
	if rollouts != 2 {
		t.Errorf("%d Rollouts rendered, want prod's backend and frontend", rollouts)
	}
}

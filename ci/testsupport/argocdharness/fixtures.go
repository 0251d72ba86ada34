package argocdharness

import (
	"os"
	"path/filepath"
	"strings"

	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// SeedRepo creates repository name on srv holding the kubernetes/ tree at kubernetesDir plus one
// overlay per entry of overlays (overlay name → namespace), each a copy of the dev overlay deploying
// into its namespace, with a 5-second progress deadline for the backend so that a failed rollout is
// detected in seconds. An overlay whose name starts with "canary" or "blue-green" rolls out through
// Argo Rollouts as prod does (kubernetes/components/<that>), with 3 replicas per Rollout and a
// 10-second progress deadline (then Argo Rollouts aborts the update itself).
func SeedRepo(srv *gitserver.Server, kubernetesDir, name string, overlays map[string]string) error {
	seed, err := os.MkdirTemp("", "seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(seed)
	if err := os.CopyFS(filepath.Join(seed, "kubernetes"), os.DirFS(kubernetesDir)); err != nil {
		return err
	}
	for overlay, ns := range overlays {
		dir := filepath.Join(seed, "kubernetes/overlays", overlay)
		_ = os.RemoveAll(dir)
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(kubernetesDir, "overlays/dev"))); err != nil {
			return err
		}
		k, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			return err
		}
		s := strings.Replace(string(k), "namespace: wanderlust-dev", "namespace: "+ns, 1)
		s = strings.Replace(s, "  - path: resources.yaml\n", "  - path: resources.yaml\n  - path: deadline.yaml\n", 1)
		for _, component := range []string{"canary", "blue-green"} {
			if !strings.HasPrefix(overlay, component) {
				continue
			}
			// The Rollouts carry the replica counts; the Deployments they run stay at 0.
			if i, j := strings.Index(s, "replicas:\n"), strings.Index(s, "patches:\n"); i >= 0 && j > i {
				s = s[:i] + s[j:]
			}
			s = strings.Replace(s, "patches:\n", "components:\n  - ../../components/"+component+"\n\npatches:\n  - path: rollouts.yaml\n", 1)
			var patch []string
			for _, app := range []string{"backend", "frontend"} {
				patch = append(patch, "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: "+app+"\nspec:\n  replicas: 3\n  progressDeadlineSeconds: 10\n")
			}
			if err := os.WriteFile(filepath.Join(dir, "rollouts.yaml"), []byte(strings.Join(patch, "---\n")), 0o644); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(s), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "deadline.yaml"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n  progressDeadlineSeconds: 5\n"), 0o644); err != nil {
			return err
		}
	}
	return srv.CreateRepo(name, "main", os.DirFS(seed))
}

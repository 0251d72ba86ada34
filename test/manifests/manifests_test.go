// Package manifests_test renders kubernetes/ with kustomize's own engine (krusty) and checks what the
// overlays produce, before and after a bump.
package manifests_test

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"wanderlust.dev/pipeline/ci/stages/manifest"
)

var envs = map[string]int{"dev": 1, "staging": 2, "prod": 3} // env → replicas

// memRepo copies the repository's kubernetes/ tree into an in-memory file system, with overrides.
func memRepo(t *testing.T, override map[string][]byte) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	root := os.DirFS("../..")
	err := fs.WalkDir(root, "kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		if o, ok := override[p]; ok {
			b = o
		}
		return mem.WriteFile("/"+p, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

func build(t *testing.T, fsys filesys.FileSystem, env string) resmap.ResMap {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, "/kubernetes/overlays/"+env)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", env, err)
	}
	return m
}

func containers(t *testing.T, r *yaml.RNode) []*yaml.RNode {
	t.Helper()
	seq, err := r.Pipe(yaml.Lookup("spec", "template", "spec", "containers"))
	if err != nil || seq == nil {
		t.Fatalf("%s/%s: no containers", r.GetKind(), r.GetName())
	}
	items, err := seq.Elements()
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func str(n *yaml.RNode, p ...string) string {
	v, err := n.Pipe(yaml.Lookup(p...))
	if err != nil || v == nil {
		return ""
	}
	return strings.TrimSpace(v.MustString())
}

func TestOverlaysRender(t *testing.T) {
	fsys := memRepo(t, nil)
	for env, replicas := range envs {
		t.Run(env, func(t *testing.T) {
			m := build(t, fsys, env)
			ns := "wanderlust-" + env
			kinds := map[string]int{}
			images := map[string]string{}
			deployments, rollouts := map[string]string{}, map[string]string{} // replicas by name (Rollouts: by the Deployment they run)
			for _, r := range m.Resources() {
				n := &r.RNode
				kinds[r.GetKind()]++
				if r.GetKind() == "Secret" {
					t.Errorf("a Secret is rendered: secrets are created out of band")
				}
				if r.GetKind() == "Namespace" {
					if r.GetName() != ns {
						t.Errorf("namespace %s, want %s", r.GetName(), ns)
					}
					continue
				}
				if r.GetNamespace() != ns {
					t.Errorf("%s/%s in namespace %q, want %q", r.GetKind(), r.GetName(), r.GetNamespace(), ns)
				}
				if r.GetKind() == "Rollout" {
					// An Argo Rollout runs the pods of the Deployment it references, at the
					// environment's count; that Deployment runs none itself.
					rollouts[str(n, "spec", "workloadRef", "name")] = str(n, "spec", "replicas")
					if str(n, "spec", "workloadRef", "kind") != "Deployment" || str(n, "spec", "progressDeadlineAbort") != "true" {
						t.Errorf("Rollout %s: no workloadRef to a Deployment, or no abort at its progress deadline", r.GetName())
					}
					continue
				}
				if r.GetKind() != "Deployment" && r.GetKind() != "StatefulSet" {
					continue
				}
				if str(n, "spec", "template", "spec", "securityContext", "runAsNonRoot") != "true" {
					t.Errorf("%s: pods may run as root", r.GetName())
				}
				for _, c := range containers(t, n) {
					img := str(c, "image")
					images[r.GetName()] = img
					if strings.HasSuffix(img, ":latest") || !strings.Contains(img[strings.LastIndex(img, "/")+1:], ":") {
						t.Errorf("%s: image %q is not pinned", r.GetName(), img)
					}
					for _, f := range [][]string{{"resources", "requests", "cpu"}, {"resources", "limits", "memory"}, {"readinessProbe"}, {"livenessProbe"}} {
						if str(c, f...) == "" {
							t.Errorf("%s: container %s has no %s", r.GetName(), str(c, "name"), strings.Join(f, "."))
						}
					}
					if str(c, "securityContext", "allowPrivilegeEscalation") != "false" {
						t.Errorf("%s: privilege escalation allowed", r.GetName())
					}
				}
				if r.GetKind() == "Deployment" {
					deployments[r.GetName()] = str(n, "spec", "replicas")
				}
				if r.GetKind() == "StatefulSet" && str(n, "spec", "volumeClaimTemplates") == "" {
					t.Errorf("%s: no storage of its own", r.GetName())
				}
			}
			for name, got := range deployments {
				pods := got
				if ro, ok := rollouts[name]; ok {
					if got != "0" {
						t.Errorf("%s: the Deployment runs %s replicas beside the Rollout that runs its pods", name, got)
					}
					pods = ro
				}
				if pods != itoa(replicas) {
					t.Errorf("%s: %s replicas, want %d", name, pods, replicas)
				}
			}
			// prod rolls out by canary (kubernetes/components/canary): a Rollout and a canary Service
			// for the backend and the frontend; the other environments as plain Deployments.
			wantRollouts, wantServices := 0, 4
			if env == "prod" {
				wantRollouts, wantServices = 2, 6
			}
			if kinds["Deployment"] != 2 || kinds["StatefulSet"] != 2 || kinds["Service"] != wantServices || kinds["Namespace"] != 1 || kinds["Rollout"] != wantRollouts {
				t.Errorf("kinds = %v", kinds)
			}
			for name, want := range map[string]string{
				"backend":  "ghcr.io/wanderlust-app/wanderlust-backend:1.0.0",
				"frontend": "ghcr.io/wanderlust-app/wanderlust-frontend:1.0.0",
			} {
				if images[name] != want {
					t.Errorf("%s image %q, want %q", name, images[name], want)
				}
			}
			if images["mongodb"] == images["redis"] {
				t.Errorf("mongodb and redis share an image")
			}
			backend, err := m.GetById(id("Deployment", "backend", ns))
			if err != nil {
				t.Fatal(err)
			}
			if got := str(containers(t, &backend.RNode)[0], "envFrom"); !strings.Contains(got, "name: wanderlust-backend") {
				t.Errorf("backend does not take its secrets from the wanderlust-backend Secret: %s", got)
			}
		})
	}
}

// TestBumpedOverlayRendersTheNewImages proves that the manifest stage's edit means to kustomize what it
// says: the rendered Deployments run exactly the bumped references, in that environment only.
func TestBumpedOverlayRendersTheNewImages(t *testing.T) {
	const digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	res, err := manifest.Apply(os.DirFS("../.."), manifest.Options{
		Path: manifest.EnvPath("staging"),
		Updates: []manifest.Update{
			{Name: "wanderlust-backend", Tag: "1.4.0"},
			{Name: "wanderlust-frontend", Tag: "1.4.0", Digest: digest},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fsys := memRepo(t, res.Files)
	want := map[string]map[string]string{
		"staging": {"backend": "ghcr.io/wanderlust-app/wanderlust-backend:1.4.0", "frontend": "ghcr.io/wanderlust-app/wanderlust-frontend:1.4.0@" + digest},
		"dev":     {"backend": "ghcr.io/wanderlust-app/wanderlust-backend:1.0.0", "frontend": "ghcr.io/wanderlust-app/wanderlust-frontend:1.0.0"},
	}
	for env, imgs := range want {
		m := build(t, fsys, env)
		for name, img := range imgs {
			d, err := m.GetById(id("Deployment", name, "wanderlust-"+env))
			if err != nil {
				t.Fatal(err)
			}
			if got := str(containers(t, &d.RNode)[0], "image"); got != img {
				t.Errorf("%s %s: %q, want %q", env, name, got, img)
			}
		}
	}
}

func TestArgoCDApplications(t *testing.T) {
	for env := range envs {
		b, err := os.ReadFile(filepath.Join("../../kubernetes/argocd", "wanderlust-"+env+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		app, err := yaml.Parse(string(b))
		if err != nil {
			t.Fatal(err)
		}
		p := str(app, "spec", "source", "path")
		if p != path.Join("kubernetes/overlays", env) {
			t.Errorf("%s: path %q", env, p)
		}
		if _, err := os.Stat(filepath.Join("../..", p, "kustomization.yaml")); err != nil {
			t.Errorf("%s: %v", env, err)
		}
		if app.GetKind() != "Application" || str(app, "spec", "syncPolicy", "automated", "prune") != "true" ||
			str(app, "spec", "syncPolicy", "automated", "selfHeal") != "true" ||
			!strings.Contains(str(app, "spec", "syncPolicy", "syncOptions"), "CreateNamespace=true") {
			t.Errorf("%s: sync policy:\n%s", env, b)
		}
		if str(app, "spec", "destination", "namespace") != "wanderlust-"+env {
			t.Errorf("%s: destination namespace %q", env, str(app, "spec", "destination", "namespace"))
		}
	}
}

// Package render renders an overlay as Argo CD's repo-server does (kustomize's krusty, or a
// directory of plain manifests) and compares renderings object by object: what a commit changed, as
// the cluster will see it. It belongs to the GitOps half (the verdict's blame), not to bump, so that
// kustomize's renderer stays out of what only edits manifests.
package render

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"wanderlust.dev/pipeline/ci/stages/manifest"
)

// Resource names one Kubernetes object as Argo CD lists it: API group, kind, namespace (empty for
// cluster-scoped objects, and for namespaced ones the overlay leaves to the application's
// destination) and name.
type Resource struct {
	Group, Kind, Namespace, Name string
}

func (r Resource) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Rendered is what an overlay renders to: each object's YAML by the object.
type Rendered map[Resource]string

// Render renders dir of fsys as Argo CD's repo-server would: with kustomize when dir holds a
// kustomization, otherwise every YAML file directly in dir (a directory source). The files are read
// from the tree under dir's first path element (e.g. kubernetes/), so overlays may refer to bases
// anywhere below it.
func Render(fsys fs.FS, dir string) (Rendered, error) {
	if err := manifest.CheckPath(dir); err != nil {
		return nil, err
	}
	dir = path.Clean(dir)
	var docs []*yaml.RNode
	k, err := manifest.KustomizationFile(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", dir, err)
	}
	if k != "" {
		mem := filesys.MakeFsInMemory()
		top, _, _ := strings.Cut(dir, "/")
		if err := fs.WalkDir(fsys, top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			return mem.WriteFile("/"+p, b)
		}); err != nil {
			return nil, fmt.Errorf("render %s: %w", dir, err)
		}
		m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/"+dir)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", dir, err)
		}
		docs = m.ToRNodeSlice()
	} else {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				continue
			}
			b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			nodes, err := kio.FromBytes(b)
			if err != nil {
				return nil, fmt.Errorf("render %s: %s: %w", dir, e.Name(), err)
			}
			docs = append(docs, nodes...)
		}
	}
	out := Rendered{}
	for _, d := range docs {
		if d.GetKind() == "" || d.GetName() == "" {
			continue
		}
		group, _, _ := strings.Cut(d.GetApiVersion(), "/")
		if !strings.Contains(d.GetApiVersion(), "/") {
			group = "" // the core group: "v1"
		}
		s, err := d.String()
		if err != nil {
			return nil, err
		}
		out[Resource{Group: group, Kind: d.GetKind(), Namespace: d.GetNamespace(), Name: d.GetName()}] = s
	}
	return out, nil
}

// Names reports whether a (as rendered) names the object b (as Argo CD lists it): a rendered object
// without a namespace names b in any namespace (the application's destination gives it one).
func (a Resource) Names(b Resource) bool {
	return a.Group == b.Group && a.Kind == b.Kind && a.Name == b.Name && (a.Namespace == "" || a.Namespace == b.Namespace)
}

// Lookup finds the object r in the rendering (see Resource.Names).
func (rd Rendered) Lookup(r Resource) (string, bool) {
	if s, ok := rd[r]; ok {
		return s, true
	}
	s, ok := rd[Resource{Group: r.Group, Kind: r.Kind, Name: r.Name}]
	return s, ok
}

// Changed lists the objects that differ between two renderings (added, removed or modified), and
// the Argo Rollouts that run the pods of a changed workload (spec.workloadRef): what they run
// changed, though their own manifest did not.
func Changed(before, after Rendered) []Resource {
	var out []Resource
	for r, s := range after {
		if b, ok := before[r]; !ok || b != s {
			out = append(out, r)
		}
	}
	for r := range before {
		if _, ok := after[r]; !ok {
			out = append(out, r)
		}
	}
	for _, ro := range after.Referencing(out) {
		if !slices.Contains(out, ro) {
			out = append(out, ro)
		}
	}
	return out
}

// Referencing lists the Argo Rollouts of rd whose spec.workloadRef names one of objs (in the same
// namespace).
func (rd Rendered) Referencing(objs []Resource) []Resource {
	var out []Resource
	for r, s := range rd {
		if r.Group != "argoproj.io" || r.Kind != "Rollout" {
			continue
		}
		n, err := yaml.Parse(s)
		if err != nil {
			continue
		}
		field := func(name string) string {
			v, err := n.Pipe(yaml.Lookup("spec", "workloadRef", name))
			if err != nil || v == nil {
				return ""
			}
			return yaml.GetValue(v)
		}
		kind, name, apiVersion := field("kind"), field("name"), field("apiVersion")
		if kind == "" || name == "" {
			continue
		}
		group, _, grouped := strings.Cut(apiVersion, "/")
		if !grouped {
			group = "" // the core group
		}
		target := Resource{Group: group, Kind: kind, Namespace: r.Namespace, Name: name}
		if slices.ContainsFunc(objs, func(o Resource) bool { return o == target }) {
			out = append(out, r)
		}
	}
	return out
}

// ProgressDeadline is the largest spec.progressDeadlineSeconds of the given objects that have one
// (Deployments and Argo Rollouts; Kubernetes' default 600 when a Deployment leaves it unset); 0 when
// none of them is such a workload.
func (rd Rendered) ProgressDeadline(objs []Resource) int {
	longest := 0
	for _, r := range objs {
		if r.Kind != "Deployment" && r.Kind != "Rollout" {
			continue
		}
		s, ok := rd.Lookup(r)
		if !ok {
			continue
		}
		n, err := yaml.Parse(s)
		if err != nil {
			continue
		}
		secs := 600
		if v, err := n.Pipe(yaml.Lookup("spec", "progressDeadlineSeconds")); err == nil && v != nil {
			if _, err := fmt.Sscan(v.YNode().Value, &secs); err != nil {
				secs = 600
			}
		}
		longest = max(longest, secs)
	}
	return longest
}

package manifest

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// podSpecPaths says where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"Rollout":     {"spec", "template", "spec"}, // Argo Rollouts (one with a workloadRef has no template: its Deployment is edited)
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

// containerImage is one container's image field in a workload document.
type containerImage struct {
	field string     // "Deployment/backend containers[backend].image"
	node  *yaml.Node // the image scalar
	ref   imageRef
}

// containerImages lists the container and init-container images of a workload document.
func containerImages(doc *yaml.RNode) []containerImage {
	if doc.YNode().Kind != yaml.MappingNode {
		return nil // a list or a scalar document is no workload (and kyaml's GetKind would panic on it)
	}
	kind := doc.GetKind()
	specPath, ok := podSpecPaths[kind]
	if !ok {
		return nil
	}
	spec, err := doc.Pipe(yaml.Lookup(specPath...))
	if err != nil || spec == nil {
		return nil
	}
	var out []containerImage
	for _, list := range []string{"initContainers", "containers"} {
		seq, err := spec.Pipe(yaml.Lookup(list))
		if err != nil || seq == nil || seq.YNode().Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range seq.Content() {
			cn := yaml.NewRNode(c)
			img := cn.Field("image")
			if img == nil {
				continue
			}
			node := img.Value.YNode()
			value := node
			if node.Kind == yaml.AliasNode && node.Alias != nil {
				value = node.Alias // matched by what it says; refused when edited
			}
			if value.Kind != yaml.ScalarNode {
				continue
			}
			ref, err := parseImage(value.Value)
			if err != nil {
				continue // a template placeholder or similar: not an image we can match
			}
			name := ""
			if f := cn.Field("name"); f != nil {
				name = f.Value.YNode().Value
			}
			out = append(out, containerImage{
				field: fmt.Sprintf("%s/%s %s[%s].image", kind, doc.GetName(), list, name),
				node:  node,
				ref:   ref,
			})
		}
	}
	return out
}

// workloadDir edits the workloads of every YAML file below dir.
func (e *editor) workloadDir(dir string, updates []Update) error {
	var files []string
	err := fs.WalkDir(e.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no YAML files under %s", ErrNotFound, dir)
	}
	return e.workloadFiles(files, updates)
}

// workloadFiles sets the images of matching containers in the given files. A short name that
// matches containers of different repositories is ambiguous: nothing is edited.
func (e *editor) workloadFiles(files []string, updates []Update) error {
	type place struct {
		path string
		s    *source
		ci   containerImage
	}
	var places []place
	for _, p := range files {
		s, err := e.load(p)
		if err != nil {
			return err
		}
		docs, err := s.documents()
		if err != nil {
			return err
		}
		for _, doc := range docs {
			for _, ci := range containerImages(doc) {
				places = append(places, place{p, s, ci})
			}
		}
	}
	for _, u := range updates {
		repos := map[string]bool{}
		for _, pl := range places {
			if u.matches(pl.ci.ref.Repo) {
				repos[normalize(pl.ci.ref.Repo)] = true
			}
		}
		if len(repos) > 1 {
			return fmt.Errorf("image %q is ambiguous: it matches %s; name the full repository", u.Name, strings.Join(slices.Sorted(maps.Keys(repos)), ", "))
		}
	}
	found := map[string]bool{}
	for _, pl := range places {
		ci, s := pl.ci, pl.s
		for _, u := range updates {
			if !u.matches(ci.ref.Repo) {
				continue
			}
			found[u.Name] = true
			if err := s.notAliased(ci.field, ci.node); err != nil {
				return err
			}
			to := ci.ref
			if u.NewName != "" {
				to.Repo = u.NewName
			}
			to.Tag, to.Digest = u.Tag, u.Digest
			// Values show the tag/digest part, or the whole reference when the repository changes.
			edit := Edit{Image: u.Name, File: pl.path, Field: ci.field, From: ci.ref.version(), To: to.version()}
			if to.Repo != ci.ref.Repo {
				edit.From, edit.To = ci.ref.String(), to.String()
			}
			e.edits = append(e.edits, edit)
			if to.String() != ci.node.Value {
				if err := s.setScalar(ci.node, to.String()); err != nil {
					return err
				}
			}
		}
	}
	for _, u := range updates {
		if !found[u.Name] {
			return e.notFound(u)
		}
	}
	return nil
}

// usedImages collects the repositories of the workloads that a kustomization renders, following its
// resources, bases and components within the repository (remote resources are not followed).
func (e *editor) usedImages(kpath string, seen map[string]bool, into map[string]bool) error {
	if seen[kpath] {
		return nil
	}
	seen[kpath] = true
	s, err := e.load(kpath)
	if err != nil {
		return err
	}
	docs, err := s.documents()
	if err != nil || len(docs) == 0 {
		return err
	}
	dir := path.Dir(kpath)
	for _, key := range []string{"resources", "bases", "components"} {
		seq, err := docs[0].Pipe(yaml.Lookup(key))
		if err != nil || seq == nil {
			continue
		}
		for _, item := range seq.Content() {
			ref := item.Value
			if item.Kind != yaml.ScalarNode || strings.Contains(ref, "://") || strings.HasPrefix(ref, "github.com/") {
				continue
			}
			p := path.Join(dir, ref)
			if !fs.ValidPath(p) {
				return fmt.Errorf("%s: resource %q leaves the repository", kpath, ref)
			}
			st, err := fs.Stat(e.fsys, p)
			if err != nil {
				return fmt.Errorf("%s: resource %q: %w", kpath, ref, err)
			}
			if st.IsDir() {
				k, err := findKustomization(e.fsys, p)
				if err != nil {
					return err
				}
				if k != "" {
					if err := e.usedImages(k, seen, into); err != nil {
						return err
					}
				}
				continue
			}
			rs, err := e.load(p)
			if err != nil {
				return err
			}
			rdocs, err := rs.documents()
			if err != nil {
				return err
			}
			for _, d := range rdocs {
				for _, ci := range containerImages(d) {
					into[ci.ref.Repo] = true
				}
			}
		}
	}
	return nil
}

// Package manifest moves image tags and digests in Kubernetes manifests: the `images:` of a kustomization,
// or the containers of plain workload manifests. It is a structural edit: kyaml locates the values by
// their place in the document and matching is by image repository, while the bytes around each changed
// value (comments, key order, quoting, indentation) are kept exactly.
//
// It works on an fs.FS of the repository, so the git stage can run it on a commit's tree without a
// checkout, and it writes nothing itself: the result holds the new file contents.
package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Options select what to edit.
type Options struct {
	// Path is a directory or file relative to the repository root, e.g. "kubernetes/overlays/dev".
	// A directory with a kustomization file is edited through that file's `images:`; any other
	// directory or file through the workloads' container images.
	Path string
	// Updates are the image changes to make; at least one.
	Updates []Update
}

// EnvPath is the overlay directory of an environment in this repository's layout.
func EnvPath(env string) string {
	return path.Join("kubernetes", "overlays", env)
}

// Edit is one place an update applies to, whether or not its value changes.
type Edit struct {
	Image string // the update's Name
	File  string // slash path from the repository root
	Field string // where in the file, e.g. "images[ghcr.io/acme/api]" or "Deployment/api containers[api].image"
	From  string // the value before ("" when the entry is added)
	To    string // the value after
}

// Changed reports whether the edit changes the value.
func (e Edit) Changed() bool { return e.From != e.To }

// Key identifies the edited value across commits.
func (e Edit) Key() string { return e.File + "#" + e.Field }

// Result is what Apply would change.
type Result struct {
	Files    map[string][]byte // new contents of the files that change
	Edits    []Edit            // every matched place, changed or not
	Searched []string          // the files that were read
}

// Changed reports whether any file changes.
func (r *Result) Changed() bool { return len(r.Files) > 0 }

// Summary lists the changes one per line, e.g. "wanderlust-backend: 1.2.2 → 1.2.3 (kubernetes/overlays/dev/kustomization.yaml)",
// or "unchanged".
func (r *Result) Summary() string {
	var lines []string
	for _, e := range r.Edits {
		if e.Changed() {
			lines = append(lines, fmt.Sprintf("%s: %s → %s (%s)", e.Image, ShortValue(e.From), ShortValue(e.To), e.File))
		}
	}
	if len(lines) == 0 {
		return "unchanged"
	}
	return strings.Join(lines, "\n")
}

// ShortValue abbreviates the digest in a value for humans: "sha256:" and 12 hex digits.
func ShortValue(v string) string {
	if v == "" {
		return "(none)"
	}
	if i := strings.Index(v, "sha256:"); i >= 0 && len(v) >= i+len("sha256:")+64 {
		return v[:i+len("sha256:")+12] + v[i+len("sha256:")+64:]
	}
	return v
}

// ErrNotFound is wrapped by the error for an image that appears nowhere under the path.
var ErrNotFound = errors.New("image not found")

// Apply computes the edit of opts on the repository fsys. Nothing is written; on error no result is returned.
func Apply(fsys fs.FS, opts Options) (*Result, error) {
	if len(opts.Updates) == 0 {
		return nil, fmt.Errorf("manifest: no image updates given")
	}
	seen := map[string]bool{}
	for _, u := range opts.Updates {
		if err := u.Validate(); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("manifest: image %q is given twice", u.Name)
		}
		seen[u.Name] = true
	}
	p, err := cleanPath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	info, err := fs.Stat(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("manifest: path %q: %w", opts.Path, err)
	}

	e := &editor{fsys: fsys, sources: map[string]*source{}}
	if info.IsDir() {
		var k string
		if k, err = findKustomization(fsys, p); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if k != "" {
			err = e.kustomization(k, opts.Updates)
		} else {
			err = e.workloadDir(p, opts.Updates)
		}
	} else if isKustomization(path.Base(p)) {
		err = e.kustomization(p, opts.Updates)
	} else {
		err = e.workloadFiles([]string{p}, opts.Updates)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return e.result()
}

// cleanPath validates a repository-relative path: no absolute paths, nothing that leaves the repository.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("a path is required")
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return "", fmt.Errorf("path %q must be relative to the repository root", p)
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") || !fs.ValidPath(c) {
		return "", fmt.Errorf("path %q leaves the repository", p)
	}
	return c, nil
}

var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

func isKustomization(name string) bool {
	for _, n := range kustomizationNames {
		if name == n {
			return true
		}
	}
	return false
}

// findKustomization returns the kustomization file of dir ("" when there is none); like kustomize,
// it refuses a directory with several.
func findKustomization(fsys fs.FS, dir string) (string, error) {
	var found []string
	for _, n := range kustomizationNames {
		p := path.Join(dir, n)
		if st, err := fs.Stat(fsys, p); err == nil && !st.IsDir() {
			found = append(found, p)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("found multiple kustomization files in %s: %s; keep one (kustomize refuses to build it)", dir, strings.Join(found, ", "))
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

// CheckPath validates a repository-relative path on its face (no network, no file read).
func CheckPath(p string) error {
	_, err := cleanPath(p)
	return err
}

// editor accumulates edits over the files it reads.
type editor struct {
	fsys     fs.FS
	sources  map[string]*source
	order    []string
	edits    []Edit
	searched []string
}

func (e *editor) load(p string) (*source, error) {
	if s, ok := e.sources[p]; ok {
		return s, nil
	}
	b, err := fs.ReadFile(e.fsys, p)
	if err != nil {
		return nil, err
	}
	s := newSource(p, b)
	e.sources[p] = s
	e.order = append(e.order, p)
	e.searched = append(e.searched, p)
	return s, nil
}

func (e *editor) notFound(u Update) error {
	return fmt.Errorf("%w: %q appears in none of %s", ErrNotFound, u.Name, strings.Join(e.searched, ", "))
}

func (e *editor) result() (*Result, error) {
	r := &Result{Files: map[string][]byte{}, Edits: e.edits, Searched: e.searched}
	for _, p := range e.order {
		s := e.sources[p]
		if len(s.edits) == 0 {
			continue
		}
		b, err := s.result()
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if string(b) != string(s.data) {
			r.Files[p] = b
		}
	}
	sort.SliceStable(r.Edits, func(i, j int) bool { return r.Edits[i].Key() < r.Edits[j].Key() })
	return r, nil
}

package intent

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/render"
)

// Failure is what failed, and at which revision.
type Failure struct {
	// Revision is what Argo CD synced (or runs) when it failed; Previous what ran before the operation
	// that brought it ("" when unknown).
	Revision, Previous string
	// Resources are the failing objects (a failed sync's objects, or those Degraded, Missing or
	// still Progressing). None: the operation failed as a whole.
	Resources []render.Resource
	// Verification: the application's post-deploy checks failed (no object names itself).
	Verification bool
}

// Blamer decides whether a failure is our change's, from what each revision renders (kustomize, as
// Argo CD's repo-server renders it): an object failing is ours only when our commit changed it (its
// rendering differs between our commit's parent and our commit), it runs as our commit left it, and
// no other commit in the same sync changed it. A failure with no object to name (the operation
// failed as a whole, or the application's checks failed) is ours only when the sync carried
// nothing but our change. Renderings are cached per revision.
type Blamer struct {
	in   *Intent
	open func(ctx context.Context) (*git.Reader, error)

	mu      sync.Mutex
	rd      *git.Reader
	renders map[string]rendering
}

type rendering struct {
	r   render.Rendered
	err error
}

// Blamer returns the blamer of the intent's commit; open opens the GitOps repository (again when a
// revision is not in the reader it opened last).
func (in *Intent) Blamer(open func(ctx context.Context) (*git.Reader, error)) *Blamer {
	return &Blamer{in: in, open: open, renders: map[string]rendering{}}
}

// render renders the intent's overlay at rev (a failure to read the repository is not cached; a
// failure to render is).
func (b *Blamer) render(ctx context.Context, rev string) (render.Rendered, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.renders[rev]; ok {
		return r.r, r.err
	}
	tree, err := b.treeAt(ctx, rev)
	if err != nil {
		return nil, err
	}
	var r rendering
	r.r, r.err = render.Render(tree, b.in.Dir)
	b.renders[rev] = r
	return r.r, r.err
}

// treeAt reads rev's tree, opening the repository again when the reader does not have it.
func (b *Blamer) treeAt(ctx context.Context, rev string) (fs.FS, error) {
	if b.rd != nil {
		if t, err := b.rd.Tree(ctx, rev); err == nil {
			return t, nil
		}
	}
	rd, err := b.open(ctx)
	if err != nil {
		return nil, err
	}
	b.rd = rd
	return rd.Tree(ctx, rev)
}

// reader is the last reader opened.
func (b *Blamer) reader(ctx context.Context) (*git.Reader, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rd == nil {
		rd, err := b.open(ctx)
		if err != nil {
			return nil, err
		}
		b.rd = rd
	}
	return b.rd, nil
}

// Changed lists the objects our commit changed, and what our commit renders.
func (b *Blamer) Changed(ctx context.Context) ([]render.Resource, render.Rendered, error) {
	ours, err := b.render(ctx, b.in.SHA)
	if err != nil {
		return nil, nil, fmt.Errorf("intent: our commit %s: %w", git.Short(b.in.SHA), err)
	}
	before, err := b.render(ctx, b.in.Parent)
	if err != nil {
		before = render.Rendered{} // the parent did not render: everything is ours
	}
	return render.Changed(before, ours), ours, nil
}

// Judge says whether the failure is our change's, and why (naming the object and, when it is not
// ours, the commit that changed it).
func (b *Blamer) Judge(ctx context.Context, f Failure) (ours bool, why string) {
	if b.in.SHA == "" {
		return false, "nothing was pushed"
	}
	ourR, errOurs := b.render(ctx, b.in.SHA)
	parR, errParent := b.render(ctx, b.in.Parent)
	switch {
	case errOurs != nil && errParent == nil:
		return true, fmt.Sprintf("our commit %s does not render: %v", git.Short(b.in.SHA), errOurs)
	case errOurs != nil:
		return false, fmt.Sprintf("cannot tell whose change failed: %v", errOurs)
	case errParent != nil:
		parR = render.Rendered{}
	}
	changed := render.Changed(parR, ourR)
	runR, err := b.render(ctx, f.Revision)
	if err != nil {
		return false, fmt.Sprintf("cannot render %s to tell whose change failed: %v", git.Short(f.Revision), err)
	}
	var prevR render.Rendered // nil: unknown, or our parent
	if f.Previous != "" && f.Previous != b.in.Parent && f.Previous != f.Revision {
		if prevR, err = b.render(ctx, f.Previous); err != nil {
			prevR = nil
		}
	}
	asOurs := func(r render.Resource) bool { return same(runR, ourR, r) }
	untouched := func(r render.Resource) bool { return prevR == nil || same(prevR, parR, r) }

	if f.Verification && f.Revision != b.in.SHA {
		// The checks ran against a newer commit than ours: what answered is not our change alone.
		return false, fmt.Sprintf("the checks ran against %s, a newer commit than ours (%s)", git.Short(f.Revision), git.Short(b.in.SHA))
	}
	if f.Verification || len(f.Resources) == 0 {
		// Nothing names itself: ours only when the sync carried our change and nothing else.
		for _, r := range union(runR, ourR, prevR, parR) {
			if !asOurs(r) || !untouched(r) {
				return false, "the same sync carried other changes than ours: " + b.who(ctx, f, r)
			}
		}
		return true, "the sync carried our change alone"
	}
	for _, r := range f.Resources {
		if contains(changed, r) && asOurs(r) && untouched(r) {
			return true, r.String() + " is as our commit set it"
		}
	}
	return false, b.who(ctx, f, f.Resources[0])
}

// who names the commit (other than ours) that changed r in the sync that failed.
func (b *Blamer) who(ctx context.Context, f Failure, r render.Resource) string {
	base := f.Previous
	if base == "" {
		base = b.in.Parent
	}
	rd, err := b.reader(ctx)
	if err == nil {
		var between []git.CommitInfo
		if between, _, err = rd.Between(ctx, f.Revision, base); err == nil {
			for _, c := range between {
				if c.SHA == b.in.SHA || len(c.Parents) == 0 {
					continue
				}
				after, e1 := b.render(ctx, c.SHA)
				before, e2 := b.render(ctx, c.Parents[0])
				if e1 == nil && e2 == nil && !same(after, before, r) {
					return fmt.Sprintf("%s was changed by %s (%s, %q), not by our commit %s", r, git.Short(c.SHA), c.Author, c.Subject, git.Short(b.in.SHA))
				}
			}
		}
	}
	return fmt.Sprintf("%s was not changed by our commit %s", r, git.Short(b.in.SHA))
}

// same reports whether r renders alike (or is absent from both) in a and b.
func same(a, b render.Rendered, r render.Resource) bool {
	x, okA := a.Lookup(r)
	y, okB := b.Lookup(r)
	return okA == okB && x == y
}

// contains reports whether an entry of list names r (see render.Resource.Names).
func contains(list []render.Resource, r render.Resource) bool {
	return slices.ContainsFunc(list, func(c render.Resource) bool { return c.Names(r) })
}

// union lists the objects of the renderings (nil ones skipped), sorted.
func union(rs ...render.Rendered) []render.Resource {
	seen := map[render.Resource]bool{}
	var out []render.Resource
	for _, r := range rs {
		for k := range r {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	slices.SortFunc(out, func(a, b render.Resource) int { return strings.Compare(a.String(), b.String()) })
	return out
}

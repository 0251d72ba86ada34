// Package intent says what a deployment means to run — the kustomize `images:` entries that its
// commit set in an environment's overlay — and judges any other revision against it: does that
// revision hold exactly those values, or did a newer commit replace them (and who)? It also undoes
// a deployment field by field: the entries it changed go back to their previous values in a new
// commit, whatever else changed in the file since.
//
// Deciding by content, not by ancestry, is what makes a deployment's verdict trustworthy: a revert of
// our change, or another run's bump of the same image, descends from our commit but does not run our
// values.
package intent

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
)

// Intent is the set of image entries a deployment wants running.
type Intent struct {
	// SHA is the commit that set the values ("" when nothing was pushed: they were already in git);
	// Parent is its parent.
	SHA, Parent string
	// Dir is the overlay (the directory of the kustomization).
	Dir string
	// Want are the entries as the deployment set them; Before the same entries before its commit
	// (by name; an entry the commit added has a zero Before).
	Want, Before []manifest.Image
	// Absent names entries that must not be there (a rollback removes the entries its deployment
	// added).
	Absent []string
}

// Mismatch is one wanted entry that a tree does not hold.
type Mismatch struct {
	Image      string // the entry's name
	Want, Have string // references ("" when the entry is missing)
}

func (m Mismatch) String() string {
	have := m.Have
	if have == "" {
		have = "(no entry)"
	}
	return manifest.LastElem(m.Image) + "=" + have
}

// Verdict is how one revision relates to the intent.
type Verdict struct {
	// Holds: the revision holds every wanted entry. Exact: it is the intent's commit.
	Holds, Exact bool
	// Newer: the revision is a later commit that contains the intent's; By names the commits on top.
	Newer bool
	By    string
	// Superseded is set when the revision is newer and does not hold our values: the commit that
	// replaced them, its author and subject, and what the revision holds instead.
	Superseded string
}

// Of reads what commit sha changed in the `images:` of the kustomization in dir.
func Of(ctx context.Context, rd *git.Reader, sha, dir string) (*Intent, error) {
	c, err := rd.Commit(ctx, sha)
	if err != nil {
		return nil, err
	}
	if len(c.Parents) != 1 {
		return nil, fmt.Errorf("intent: commit %s has %d parents; a deployment commit has one", git.Short(sha), len(c.Parents))
	}
	after, err := imagesAt(ctx, rd, sha, dir)
	if err != nil {
		return nil, err
	}
	before, err := imagesAt(ctx, rd, c.Parents[0], dir)
	if err != nil {
		return nil, err
	}
	in := &Intent{SHA: sha, Parent: c.Parents[0], Dir: dir}
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if a, b := after[name], before[name]; a != b {
			in.Want, in.Before = append(in.Want, a), append(in.Before, b)
		}
	}
	return in, nil
}

// Current is the intent of updates that need no commit (every value is already in git at the tree):
// the entries of dir that the updates select, as they are.
func Current(fsys fs.FS, dir string, updates []manifest.Update) (*Intent, error) {
	imgs, err := manifest.Images(fsys, dir)
	if err != nil {
		return nil, err
	}
	in := &Intent{Dir: dir}
	for _, i := range imgs {
		for _, u := range updates {
			if u.Matches(i.Name) {
				in.Want = append(in.Want, i)
				break
			}
		}
	}
	if len(in.Want) == 0 {
		return nil, fmt.Errorf("intent: no images entry of %s matches the updates", dir)
	}
	return in, nil
}

// Summary lists the wanted entries, "backend=ghcr.io/…:2.0.0, …".
func (in *Intent) Summary() string {
	var parts []string
	for _, w := range in.Want {
		parts = append(parts, manifest.LastElem(w.Name)+"="+w.Ref())
	}
	for _, a := range in.Absent {
		parts = append(parts, manifest.LastElem(a)+"=(no entry)")
	}
	return strings.Join(parts, ", ")
}

// Missing lists the wanted entries that the tree does not hold (nil when it holds them all).
func (in *Intent) Missing(fsys fs.FS) ([]Mismatch, error) {
	imgs, err := manifest.Images(fsys, in.Dir)
	if err != nil {
		return nil, err
	}
	have := manifest.ByName(imgs)
	var out []Mismatch
	for _, w := range in.Want {
		h, ok := have[w.Name]
		if ok && h == w {
			continue
		}
		m := Mismatch{Image: w.Name, Want: w.Ref()}
		if ok {
			m.Have = h.Ref()
		}
		out = append(out, m)
	}
	for _, a := range in.Absent {
		if h, ok := have[a]; ok {
			out = append(out, Mismatch{Image: a, Want: "(no entry)", Have: h.Ref()})
		}
	}
	return out, nil
}

// Judge says how revision rev relates to the intent.
func (in *Intent) Judge(ctx context.Context, rd *git.Reader, rev string) (Verdict, error) {
	if in.SHA != "" && rev == in.SHA {
		return Verdict{Holds: true, Exact: true}, nil
	}
	var between []git.CommitInfo
	newer := false
	if in.SHA != "" {
		var err error
		if between, newer, err = rd.Between(ctx, rev, in.SHA); err != nil {
			return Verdict{}, err
		}
	}
	if len(in.Want) == 0 && len(in.Absent) == 0 { // the commit set no image entry here: fall back to ancestry
		return Verdict{Holds: newer, Newer: newer, By: who(between)}, nil
	}
	missing, err := in.missingAt(ctx, rd, rev)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Holds: len(missing) == 0, Newer: newer, By: who(between)}
	if v.Holds || !newer {
		return v, nil
	}
	// Replaced: name the first commit after ours that no longer held our values.
	culprit := between[0]
	for i := len(between) - 1; i >= 0; i-- {
		if m, err := in.missingAt(ctx, rd, between[i].SHA); err == nil && len(m) > 0 {
			culprit = between[i]
			break
		}
	}
	var now []string
	for _, m := range missing {
		now = append(now, m.String())
	}
	v.Superseded = fmt.Sprintf("%s (%s, %q) replaced our values; %s now holds %s",
		git.Short(culprit.SHA), culprit.Author, culprit.Subject, git.Short(rev), strings.Join(now, ", "))
	return v, nil
}

func (in *Intent) missingAt(ctx context.Context, rd *git.Reader, rev string) ([]Mismatch, error) {
	t, err := rd.Tree(ctx, rev)
	if err != nil {
		return nil, err
	}
	return in.Missing(t)
}

// who names commits, newest first: "abc123def456 (Ann <a@x>, "subject")", at most three.
func who(cs []git.CommitInfo) string {
	var parts []string
	for i, c := range cs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(cs)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %q)", git.Short(c.SHA), c.Author, c.Subject))
	}
	return strings.Join(parts, "; ")
}

// imagesAt reads the `images:` entries of dir at commit sha, by name.
func imagesAt(ctx context.Context, rd *git.Reader, sha, dir string) (map[string]manifest.Image, error) {
	t, err := rd.Tree(ctx, sha)
	if err != nil {
		return nil, err
	}
	imgs, err := manifest.Images(t, dir)
	if err != nil {
		return nil, fmt.Errorf("intent: at %s: %w", git.Short(sha), err)
	}
	return manifest.ByName(imgs), nil
}

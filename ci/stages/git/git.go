// Package git commits an edit to one branch of a remote repository and pushes it, the GitOps write path.
//
// It clones the branch shallowly into memory (no checkout: the edit reads files straight from the
// commit's tree), writes only the changed blobs and trees, and pushes exactly those objects with a
// compare-and-swap on the branch: the push succeeds only if the branch still points at the commit we
// built on. When another run moved the branch meanwhile it fetches the new head, re-applies the edit
// there and retries with jittered backoff; it never forces. When the other run changed a value that
// this edit also sets, it fails with a ConflictError instead of overwriting it.
package git

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/memory"
	"go.opentelemetry.io/otel/attribute"

	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Options say where to commit, as whom, and how hard to try.
type Options struct {
	// URL of the remote: https://…, http://…, file://…, ssh://… or user@host:path.
	URL string
	// Branch to commit to; default "main".
	Branch string
	// Ref, when set, is the full name of the reference to commit to instead of Branch (e.g.
	// refs/notes/deployments); CreateRef lets a missing one be created.
	Ref       string
	CreateRef bool
	// Auth for the remote; the zero value means none.
	Auth Auth
	// Author (and committer) of the commit; default "Wanderlust CI <ci@wanderlust.invalid>".
	Author Signature
	// MaxAttempts bounds the tries to reach the remote when it does not answer; default 10.
	MaxAttempts int
	// MaxPushes bounds the pushes tried when other writers keep moving the branch; default 60. With
	// N writers racing on one branch, one lands per round, so the last may need up to N pushes in
	// the worst case: a monorepo GitOps branch sees dozens of services deploying at once.
	MaxPushes int
	// Backoff sets the retry delays, each drawn at random to spread concurrent runs apart: after the
	// branch moved, up to the duration of our first attempt (at least Backoff) doubled per further
	// attempt — a losing push fails fast at the compare-and-swap check, so its own duration would
	// make the losers hammer the server; after a failure to reach the remote, Backoff doubled per
	// attempt. Both are capped by MaxBackoff. Defaults 50ms and 8s.
	Backoff, MaxBackoff time.Duration
	// Prefetch lists the directories the edit (or, for Open, the reader of the head) reads (e.g.
	// "kubernetes"). From a server that serves partial clones, only their blobs are fetched up
	// front, one request per directory; other blobs are fetched when read. Empty: blobs are fetched
	// when read.
	Prefetch []string
	// DryRun computes the commit and its diff but pushes nothing.
	DryRun bool
	// Log receives one line per step (clone, conflict, retry, push); nil discards them.
	Log func(string)
}

// PrefetchFor returns o fetching the top directory of dir (e.g. kubernetes for
// kubernetes/overlays/dev) whole when o names no Prefetch directory: an overlay's bases live under
// it, so editing or rendering the overlay then reads no object one request at a time.
func (o Options) PrefetchFor(dir string) Options {
	if top, _, _ := strings.Cut(strings.TrimPrefix(dir, "/"), "/"); len(o.Prefetch) == 0 && top != "" {
		o.Prefetch = []string{top}
	}
	return o
}

// Signature names a commit's author.
type Signature struct{ Name, Email string }

// Change computes the edit on a branch head. It is called again on the new head after the branch
// moved, so it must depend only on the tree it is given.
type Change func(head fs.FS) (*Patch, error)

// Patch is one computed edit.
type Patch struct {
	// Files are the new contents of the files that change, by slash path from the repository root.
	Files map[string][]byte
	// Values are the fields that the edit sets, changed or not: a field whose value another commit
	// changed since our base, to something other than what we set, is a conflict.
	Values []Value
	// Message is the commit message.
	Message string
	// Detail is the Change's own account of the edit, handed back in Result.Detail.
	Detail any
}

// Value is one field an edit sets.
type Value struct {
	Key      string // stable name of the field, e.g. "path/kustomization.yaml#images[api]"
	From, To string
}

// Result says what happened.
type Result struct {
	// SHA is the pushed commit, or the branch head when nothing had to change (or, in a dry run,
	// the commit that would have been pushed).
	SHA string
	// Base is the commit the edit was applied on.
	Base string
	// Changed reports whether a commit was made; Pushed whether it reached the remote.
	Changed, Pushed bool
	// Attempts is the number of pushes tried (1 when the first one landed).
	Attempts int
	// Diff is the commit's unified diff ("" when unchanged).
	Diff string
	// Message is the commit message.
	Message string
	// Detail is the Detail of the patch that was committed (or found already applied).
	Detail any
}

// ConflictError reports a field that another commit changed since our base.
type ConflictError struct {
	Key            string
	Base, Theirs   string // the value at our base, and the value that won
	Ours           string // the value we wanted
	Commit, Author string // the commit that set Theirs, and its author
	Subject        string
	// Hint says what to do (default: rerun to build on the new value).
	Hint string
}

func (e *ConflictError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = "Nothing was pushed; rerun to build on the new value"
	}
	by := "another commit"
	if e.Commit != "" {
		by = fmt.Sprintf("commit %s (%s, %q)", Short(e.Commit), e.Author, e.Subject)
	}
	return fmt.Sprintf("conflict on %s: %s changed it from %q to %q; we wanted %q. %s", e.Key, by, e.Base, e.Theirs, e.Ours, hint)
}

// ErrRemoteMoved is wrapped when the branch kept moving for every attempt.
var ErrRemoteMoved = errors.New("the branch moved on every attempt")

const (
	defaultBranch      = "main"
	defaultMaxAttempts = 10
	defaultMaxPushes   = 60
)

// Commit applies change to the head of the branch, commits it and pushes it. No commit is made when
// the change leaves every file as it is.
func Commit(ctx context.Context, opts Options, change Change) (res *Result, err error) {
	ctx, span := telemetry.Start(ctx, "git.commit", telemetry.Attr("git.repository", opts.URL), telemetry.Attr("git.branch", cmp.Or(opts.Branch, defaultBranch)))
	defer func() {
		if res != nil {
			span.SetAttributes(telemetry.Attr("git.sha", res.SHA), telemetry.Attr("git.base", res.Base), attribute.Int("git.attempts", res.Attempts),
				attribute.Bool("git.changed", res.Changed), attribute.Bool("git.pushed", res.Pushed))
		}
		telemetry.End(span, err)
	}()
	r, err := newRun(opts)
	if err != nil {
		return nil, redact(fmt.Errorf("git: %w", err), opts.Auth)
	}
	defer func() { err = r.wrap(err) }()
	start := time.Now()
	fctx, fetch := telemetry.Start(ctx, "git.fetch")
	err = r.fetchHead(fctx, 1)
	fetch.SetAttributes(attribute.Bool("git.partial_clone", r.partial), telemetry.Attr("git.head", r.head.String()))
	telemetry.End(fetch, err)
	if err != nil {
		return nil, err
	}

	var base map[string]Value
	var sent []*Result // every commit we tried to push
	for attempt := 1; ; attempt++ {
		head, err := r.headCommit()
		if err != nil {
			return nil, err
		}
		if err := r.prefetch(ctx, head); err != nil {
			return nil, err
		}
		objs := r.objects(ctx)
		tree, err := newTreeFS(head, objs)
		if err != nil {
			return nil, err
		}
		_, edit := telemetry.Start(ctx, "git.edit", telemetry.Attr("git.head", head.Hash.String()))
		patch, err := change(tree)
		if patch != nil {
			edit.SetAttributes(attribute.Int("git.files_changed", len(patch.Files)))
		}
		telemetry.End(edit, err)
		if err != nil {
			return nil, err
		}
		if base == nil {
			base = map[string]Value{}
			for _, v := range patch.Values {
				base[v.Key] = v
			}
		} else if err := r.checkConflicts(ctx, base, patch, change); err != nil {
			return nil, err
		}

		res := &Result{SHA: head.Hash.String(), Base: head.Hash.String(), Attempts: attempt - 1, Message: patch.Message, Detail: patch.Detail}
		commit, objects, err := r.commit(objs, head, patch)
		if err != nil {
			return nil, err
		}
		if commit == nil {
			if landed := r.landed(ctx, head, sent); landed != nil {
				return landed, nil
			}
			r.logf("unchanged: %s already holds every value", Short(head.Hash.String()))
			return res, nil
		}
		res.Changed, res.SHA = true, commit.Hash.String()
		if err := r.fetchOld(objs, head, patch.Files); err != nil {
			return nil, err
		}
		if res.Diff, err = diff(objs, head, commit); err != nil {
			return nil, err
		}
		if r.o.DryRun {
			r.logf("dry run: commit %s on %s not pushed", Short(res.SHA), Short(res.Base))
			return res, nil
		}

		res.Attempts = attempt
		sent = append(sent, res)
		pctx, push := telemetry.Start(ctx, "git.push", attribute.Int("git.attempt", attempt),
			telemetry.Attr("git.base", head.Hash.String()), telemetry.Attr("git.commit", commit.Hash.String()))
		err = r.push(pctx, head.Hash, commit.Hash, objects)
		var moved *movedError
		switch {
		case err == nil:
			push.SetAttributes(telemetry.Attr("git.outcome", "landed"))
			telemetry.End(push, nil)
		case errors.As(err, &moved):
			push.SetAttributes(telemetry.Attr("git.outcome", "branch moved"), telemetry.Attr("git.moved_to", moved.now))
			telemetry.End(push, nil)
		default:
			push.SetAttributes(telemetry.Attr("git.outcome", "failed"))
			telemetry.End(push, redact(err, r.o.Auth))
		}
		if err == nil {
			res.Pushed = true
			r.logf("pushed %s to %s (attempt %d)", Short(res.SHA), r.target(), attempt)
			return res, nil
		}
		if moved == nil {
			return nil, err
		}
		if attempt >= r.o.MaxPushes {
			return nil, fmt.Errorf("%w: gave up after %d attempts: %v", ErrRemoteMoved, attempt, err)
		}
		if r.turn == 0 {
			r.turn = max(time.Since(start), r.o.Backoff) // our first full attempt: fetch, edit, push
		}
		r.logf("branch moved (%v); fetching and re-applying (attempt %d of %d)", err, attempt+1, r.o.MaxPushes)
		r.sleep(ctx, contention, attempt)
		err = r.fetchHead(ctx, 1) // the head after the wait, not the one the failed push saw
		if err != nil {
			return nil, err
		}
	}
}

// landed finds, when an earlier push of ours had an unknown outcome (its reply was lost), our own
// commit in the history of the head that now holds every value: the push landed, and its commit —
// not the head — is the result.
func (r *run) landed(ctx context.Context, head *object.Commit, sent []*Result) *Result {
	if len(r.uncertain) == 0 {
		return nil
	}
	if err := r.fetchDeeper(ctx, head.Hash); err != nil {
		r.logf("cannot read the history of %s to look for our earlier push: %v", Short(head.Hash.String()), err)
		return nil
	}
	for _, res := range sent {
		h := plumbing.NewHash(res.SHA)
		if slices.Contains(r.uncertain, h) && r.reaches(head.Hash, []plumbing.Hash{h}) {
			r.logf("our commit %s is on %s: an earlier push landed though its reply was lost", Short(res.SHA), r.target())
			res.Pushed = true
			return res
		}
	}
	return nil
}

// Validate checks the options (URL, branch, credentials' form) without any network call; errors
// carry no secret.
func (o Options) Validate() error {
	if _, err := newRun(o); err != nil {
		return redact(fmt.Errorf("git: %w", err), o.Auth)
	}
	return nil
}

// newRun validates the options, fills in defaults and prepares the transport.
func newRun(o Options) (*run, error) {
	o, auth, err := o.normalize()
	if err != nil {
		return nil, err
	}
	ep, err := transport.NewEndpoint(o.URL)
	if err != nil {
		return nil, permanent(err)
	}
	cli, err := client.NewClient(ep)
	if err != nil {
		return nil, permanent(err)
	}
	ref := plumbing.NewBranchReferenceName(o.Branch)
	if o.Ref != "" {
		ref = plumbing.ReferenceName(o.Ref)
		if err := ref.Validate(); err != nil || !strings.HasPrefix(o.Ref, "refs/") {
			return nil, permanent(fmt.Errorf("reference %q is not a full reference name", o.Ref))
		}
	}
	return &run{o: o, auth: auth, ep: ep, cli: cli, ref: ref, st: memory.NewStorage(), complete: map[plumbing.Hash]bool{}}, nil
}

func (o Options) normalize() (Options, transport.AuthMethod, error) {
	if o.Branch == "" {
		o.Branch = defaultBranch
	}
	if err := plumbing.NewBranchReferenceName(o.Branch).Validate(); err != nil || strings.HasPrefix(o.Branch, "-") {
		return o, nil, fmt.Errorf("branch %q is not a valid branch name", o.Branch)
	}
	if o.Author.Name == "" {
		o.Author.Name = "Wanderlust CI"
	}
	if o.Author.Email == "" {
		o.Author.Email = "ci@wanderlust.invalid"
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = defaultMaxAttempts
	}
	if o.MaxPushes <= 0 {
		o.MaxPushes = defaultMaxPushes
	}
	if o.Backoff <= 0 {
		o.Backoff = 50 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 8 * time.Second
	}
	auth, err := o.Auth.method(o.URL)
	return o, auth, err
}

// run is the state of one Commit call: an in-memory object store holding the branch head.
type run struct {
	o        Options
	auth     transport.AuthMethod
	ep       *transport.Endpoint
	cli      transport.Transport
	ref      plumbing.ReferenceName
	st       *memory.Storage
	head     plumbing.Hash   // the branch head we build on
	known    []plumbing.Hash // commits we hold, sent as "have"s
	caps     *capability.List
	partial  bool                   // the server serves filtered packs and objects by hash
	complete map[plumbing.Hash]bool // trees fetched whole, blobs included
	// prefetched are the commits whose Prefetch directories are here whole: the "have"s that let a
	// later head's prefetch bring only what changed.
	prefetched []plumbing.Hash
	// turn is how long our first attempt (fetch, edit, push) took: the unit of the contention backoff.
	turn time.Duration
	// uncertain are the commits whose push may have landed though no reply said so (the connection
	// failed after the request was sent).
	uncertain []plumbing.Hash
}

// target names what we write: the branch, or the reference given instead (e.g. refs/notes/runs).
func (r *run) target() string {
	if r.o.Ref != "" {
		return r.o.Ref
	}
	return r.o.Branch
}

func (r *run) logf(format string, args ...any) {
	if r.o.Log != nil {
		r.o.Log(redact(fmt.Errorf(format, args...), r.o.Auth).Error())
	}
}

func (r *run) headCommit() (*object.Commit, error) {
	return object.GetCommit(r.st, r.head)
}

// commit writes the patch's files on top of head. It returns nil when no file changes.
func (r *run) commit(objs *objects, head *object.Commit, p *Patch) (*object.Commit, []plumbing.Hash, error) {
	if len(p.Files) == 0 {
		return nil, nil, nil
	}
	tree, err := objs.tree(head.TreeHash)
	if err != nil {
		return nil, nil, err
	}
	s := r.st
	treeHash, objects, err := writeTree(s, objs, tree, p.Files)
	if err != nil {
		return nil, nil, fmt.Errorf("write tree: %w", err)
	}
	if treeHash == head.TreeHash {
		return nil, nil, nil
	}
	if strings.TrimSpace(p.Message) == "" {
		return nil, nil, permanent(errors.New("empty commit message"))
	}
	now := time.Now()
	sig := object.Signature{Name: r.o.Author.Name, Email: r.o.Author.Email, When: now}
	c := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      strings.TrimRight(p.Message, "\n") + "\n",
		TreeHash:     treeHash,
		ParentHashes: []plumbing.Hash{head.Hash},
	}
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return nil, nil, err
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return nil, nil, err
	}
	commit, err := object.GetCommit(s, h)
	if err != nil {
		return nil, nil, err
	}
	return commit, append(objects, h), nil
}

// fetchOld makes sure the head's versions of the changed files are here for the diff (in a partial
// clone an edit may replace a file without reading it).
func (r *run) fetchOld(objs *objects, head *object.Commit, files map[string][]byte) error {
	var want []plumbing.Hash
	for p := range files {
		if e, err := objs.entry(head.TreeHash, p); err == nil && e.Mode.IsFile() && !r.has(e.Hash) {
			want = append(want, e.Hash)
		}
	}
	if len(want) == 0 || !r.partial {
		return nil
	}
	return r.fetchObjects(objs.ctx, want, "")
}

// diff is the unified diff of c against its parent. It walks only the subtrees that differ (in a
// partial clone the others were never fetched, and go-git's own tree diff would stop at them).
func diff(objs *objects, parent, c *object.Commit) (string, error) {
	from, err := objs.tree(parent.TreeHash)
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	to, err := objs.tree(c.TreeHash)
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	var changes object.Changes
	err = diffTrees(objs, parent.TreeHash, c.TreeHash, "", func(p string, a, b plumbing.Hash) error {
		ch := &object.Change{}
		for _, side := range []struct {
			h    plumbing.Hash
			t    *object.Tree
			into *object.ChangeEntry
		}{{a, from, &ch.From}, {b, to, &ch.To}} {
			if side.h.IsZero() {
				continue
			}
			if _, err := objs.blob(side.h); err != nil { // fetched here in a partial clone
				return err
			}
			*side.into = object.ChangeEntry{Name: p, Tree: side.t, TreeEntry: object.TreeEntry{Name: path.Base(p), Mode: filemode.Regular, Hash: side.h}}
		}
		changes = append(changes, ch)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	sort.Slice(changes, func(i, j int) bool { return changeName(changes[i]) < changeName(changes[j]) })
	p, err := changes.Patch()
	if err != nil {
		return "", fmt.Errorf("diff: %w", err)
	}
	return p.String(), nil
}

func changeName(c *object.Change) string {
	if c.To.Name != "" {
		return c.To.Name
	}
	return c.From.Name
}

// checkConflicts compares the values the patch sets on the new head with those at our base.
func (r *run) checkConflicts(ctx context.Context, base map[string]Value, p *Patch, change Change) error {
	for _, v := range p.Values {
		b, ok := base[v.Key]
		if !ok || v.From == b.From || v.From == b.To {
			continue
		}
		ce := &ConflictError{Key: v.Key, Base: b.From, Theirs: v.From, Ours: b.To}
		r.blame(ctx, ce, change)
		return ce
	}
	return nil
}

// blame finds the newest commit that set the conflicting value, looking back a bounded distance.
func (r *run) blame(ctx context.Context, ce *ConflictError, change Change) {
	const depth = 50
	_ = r.fetchHead(ctx, depth) // best effort: with less history we name the newest commit we have
	c, err := r.headCommit()
	if err != nil {
		return
	}
	valueAt := func(c *object.Commit) (string, bool) {
		t, err := newTreeFS(c, r.objects(ctx))
		if err != nil {
			return "", false
		}
		p, err := change(t)
		if err != nil {
			return "", false
		}
		for _, v := range p.Values {
			if v.Key == ce.Key {
				return v.From, true
			}
		}
		return "", false
	}
	winner := c
	for i := 0; i < depth && len(c.ParentHashes) > 0; i++ {
		parent, err := object.GetCommit(r.st, c.ParentHashes[0])
		if err != nil {
			break // the edge of our shallow history
		}
		if v, ok := valueAt(parent); !ok || v != ce.Theirs {
			break
		}
		winner, c = parent, parent
	}
	ce.Commit = winner.Hash.String()
	ce.Author = winner.Author.Name + " <" + winner.Author.Email + ">"
	ce.Subject, _, _ = strings.Cut(winner.Message, "\n")
}

// Why a retry waits: another writer won the race, or the remote did not answer.
const (
	contention = iota
	unreachable
)

// sleep waits the jittered delay before retry number attempt, or until ctx ends.
func (r *run) sleep(ctx context.Context, why, attempt int) {
	var d time.Duration
	if why == contention {
		d = min(max(r.turn, r.o.Backoff)<<min(attempt-1, 16), r.o.MaxBackoff)
		d = rand.N(d + 1) // full jitter: the losers of a race spread out
	} else {
		d = min(r.o.Backoff<<min(attempt-1, 16), r.o.MaxBackoff)
		d = d/2 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// retry runs op until it succeeds, fails permanently, or MaxAttempts tries failed.
func (r *run) retry(ctx context.Context, what string, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if isPermanent(err) {
			return fmt.Errorf("%s: %w", what, describe(err))
		}
		if attempt >= r.o.MaxAttempts {
			return fmt.Errorf("%s: remote unreachable after %d attempts: %w", what, attempt, err)
		}
		r.logf("%s failed (%v); retrying (attempt %d of %d)", what, err, attempt+1, r.o.MaxAttempts)
		r.sleep(ctx, unreachable, attempt)
	}
}

package git

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
)

// NotesRef is where the pipeline records the outcome of each deployment, as git notes on the
// deployment's commit (`git log --notes=deployments` shows them).
const NotesRef = "refs/notes/deployments"

// RunsRef is where the pipeline records runs that made no deployment commit (refused in preflight,
// a failed scan, build or gate, already deployed): a line each, appended to the note on the branch
// head the run started from (`git log --notes=runs`).
const RunsRef = "refs/notes/runs"

// AddNote attaches note to commit target in the notes reference ref (created when missing), as git
// does: a commit on ref whose tree holds a file named by the target's SHA. It is pushed with Commit's
// compare-and-swap and re-apply rules: notes of concurrent runs all land, none is forced.
func AddNote(ctx context.Context, opts Options, ref, target string, note []byte) (*Result, error) {
	return writeNote(ctx, opts, ref, target, func([]byte) []byte { return note }, true)
}

// AppendNote appends line to the note of target in ref (created when missing), with the same rules
// as AddNote; concurrent appends all land, in some order.
func AppendNote(ctx context.Context, opts Options, ref, target string, line []byte) (*Result, error) {
	return writeNote(ctx, opts, ref, target, func(cur []byte) []byte { return append(append([]byte(nil), cur...), line...) }, false)
}

// writeNote sets target's note in ref to content(current note); replace marks the note as a value
// that a concurrent writer's different note conflicts with.
func writeNote(ctx context.Context, opts Options, ref, target string, content func(cur []byte) []byte, replace bool) (*Result, error) {
	if !plumbing.IsHash(target) {
		return nil, fmt.Errorf("git: note target %q is not a full commit SHA", target)
	}
	o := opts
	o.Ref, o.CreateRef, o.Prefetch = ref, true, nil
	if err := ensureRef(ctx, o); err != nil {
		return nil, err
	}
	o.CreateRef = false
	return Commit(ctx, o, func(head fs.FS) (*Patch, error) {
		path := target
		if _, err := fs.Stat(head, target[:2]+"/"+target[2:]); err == nil {
			path = target[:2] + "/" + target[2:] // a fanned-out notes tree (written by git for many notes)
		}
		cur, _ := fs.ReadFile(head, path)
		note := content(cur)
		p := &Patch{Files: map[string][]byte{path: note}, Message: fmt.Sprintf("Deployment record of %s\n\nNotes added by the Wanderlust pipeline.\n", Short(target))}
		if replace {
			p.Values = []Value{{Key: "note " + target, From: string(cur), To: string(note)}}
		}
		return p, nil
	})
}

// ensureRef creates ref with an empty root commit unless it exists (a concurrent creation wins).
func ensureRef(ctx context.Context, o Options) (err error) {
	r, err := newRun(o)
	if err != nil {
		return redact(fmt.Errorf("git: %w", err), o.Auth)
	}
	defer func() { err = r.wrap(err) }()
	if err := r.fetchHead(ctx, 1); err != nil {
		return err
	}
	if !r.head.IsZero() {
		return nil
	}
	treeHash, objects, err := writeTree(r.st, r.objects(ctx), nil, map[string][]byte{})
	if err != nil {
		return err
	}
	sig := object.Signature{Name: r.o.Author.Name, Email: r.o.Author.Email, When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: "Deployment records (git notes)\n", TreeHash: treeHash}
	obj := r.st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return err
	}
	h, err := r.st.SetEncodedObject(obj)
	if err != nil {
		return err
	}
	if len(objects) == 0 {
		objects = []plumbing.Hash{treeHash}
	}
	err = r.push(ctx, plumbing.ZeroHash, h, append(objects, h))
	var moved *movedError
	if errors.As(err, &moved) {
		return nil // created meanwhile by another run
	}
	return err
}

// ReadNotes returns the notes of ref by target commit (empty when ref does not exist), in one
// request: the notes commit at depth 1 with its tree and blobs, no history.
func ReadNotes(ctx context.Context, opts Options, ref string) (notes map[string][]byte, err error) {
	o := opts
	o.Ref, o.CreateRef = ref, true
	r, err := newRun(o)
	if err != nil {
		return nil, redact(fmt.Errorf("git: %w", err), o.Auth)
	}
	defer func() { err = r.wrap(err) }()
	head, err := r.advertise(ctx)
	if err != nil || head.IsZero() {
		return map[string][]byte{}, err
	}
	err = r.retry(ctx, "fetch notes", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		req := r.request()
		req.Wants = []plumbing.Hash{head}
		req.Depth = packp.DepthCommits(1)
		req.Capabilities.Set(capability.Shallow)
		resp, err := sess.UploadPack(ctx, req)
		if err != nil {
			return err
		}
		return r.store(req, resp)
	})
	if err != nil {
		return nil, err
	}
	c, err := object.GetCommit(r.st, head)
	if err != nil {
		return nil, err
	}
	t, err := c.Tree()
	if err != nil {
		return nil, err
	}
	notes = map[string][]byte{}
	err = t.Files().ForEach(func(f *object.File) error {
		body, err := f.Contents()
		if err != nil {
			return err
		}
		notes[strings.ReplaceAll(f.Name, "/", "")] = []byte(body)
		return nil
	})
	return notes, err
}

// advertise reads the reference advertisement: the capabilities and the head of the reference.
func (r *run) advertise(ctx context.Context) (plumbing.Hash, error) {
	var head plumbing.Hash
	err := r.retry(ctx, "list references", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		adv, h, err := r.advertisedHead(ctx, sess)
		if err != nil {
			return err
		}
		r.caps, head = adv.Capabilities, h
		r.partial = adv.Capabilities.Supports(capability.Filter) && adv.Capabilities.Supports(capability.AllowReachableSHA1InWant)
		return nil
	})
	return head, err
}

// Entry is one commit of a branch's history with its full message.
type Entry struct {
	CommitInfo
	Message   string
	Committed time.Time
}

// History returns the branch's first-parent history, newest first, up to max commits, reading
// commits only: from a server that serves partial clones no tree or blob is fetched.
func History(ctx context.Context, opts Options, max int) (entries []Entry, err error) {
	r, err := newRun(opts)
	if err != nil {
		return nil, redact(fmt.Errorf("git: %w", err), opts.Auth)
	}
	defer func() { err = r.wrap(err) }()
	head, err := r.advertise(ctx)
	if err != nil {
		return nil, err
	}
	err = r.retry(ctx, "fetch history", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		return r.fetchCommit(ctx, sess, head, max)
	})
	if err != nil {
		return nil, err
	}
	for h := head; !h.IsZero() && len(entries) < max; {
		c, err := object.GetCommit(r.st, h)
		if err != nil {
			break // the edge of the fetched history
		}
		entries = append(entries, Entry{CommitInfo: info(c), Message: c.Message, Committed: c.Committer.When})
		if len(c.ParentHashes) == 0 {
			break
		}
		h = c.ParentHashes[0]
	}
	return entries, nil
}

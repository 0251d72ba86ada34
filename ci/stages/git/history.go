package git

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxHistory bounds how far back Contains looks.
const maxHistory = 200

// Contains reports whether commit descendant contains commit ancestor (is it or has it in its
// history, within maxHistory commits).
func Contains(ctx context.Context, opts Options, descendant, ancestor string) (bool, error) {
	if descendant == ancestor {
		return true, nil
	}
	rd, err := Open(ctx, opts)
	if err != nil {
		return false, err
	}
	_, ok, err := rd.Between(ctx, descendant, ancestor)
	return ok, err
}

// fetchDeeper fetches commit h and up to maxHistory of its ancestors, commits only where possible.
func (r *run) fetchDeeper(ctx context.Context, h plumbing.Hash) error {
	return r.retry(ctx, "fetch history", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		saved := r.prefetched
		r.prefetched = nil // a plain deepening fetch, not a catch-up
		defer func() { r.prefetched = saved }()
		return r.fetchCommit(ctx, sess, h, maxHistory)
	})
}

// Revert commits the inverse of commit sha on the branch (a new commit; history is never rewritten)
// and pushes it with Commit's rules. It fails with a ConflictError if a file the commit changed was
// changed again since.
func Revert(ctx context.Context, opts Options, sha, reason string) (*Result, error) {
	r, err := newRun(opts)
	if err != nil {
		return nil, redact(fmt.Errorf("git: %w", err), opts.Auth)
	}
	changes, subject, err := r.commitChanges(ctx, plumbing.NewHash(sha))
	if err != nil {
		return nil, r.wrap(fmt.Errorf("revert %s: %w", shortSHA(sha), err))
	}
	msg := fmt.Sprintf("Revert %q\n\nThis reverts commit %s.", subject, sha)
	if reason != "" {
		msg += "\n\nReason: " + strings.TrimSpace(reason)
	}
	return Commit(ctx, opts, func(head fs.FS) (*Patch, error) {
		p := &Patch{Files: map[string][]byte{}, Message: msg}
		for _, c := range changes {
			cur, err := fs.ReadFile(head, c.path)
			if err != nil {
				return nil, fmt.Errorf("revert %s: %s: %w", shortSHA(sha), c.path, err)
			}
			p.Values = append(p.Values, Value{Key: c.path, From: string(cur), To: string(c.before)})
			switch {
			case bytes.Equal(cur, c.before): // already reverted
			case bytes.Equal(cur, c.after):
				p.Files[c.path] = c.before
			default:
				return nil, &ConflictError{Key: c.path, Base: string(c.after), Theirs: string(cur), Ours: string(c.before),
					Commit: "(after " + shortSHA(sha) + ")", Subject: "changed again since the commit to revert"}
			}
		}
		return p, nil
	})
}

// fileChange is one file a commit modified.
type fileChange struct {
	path          string
	before, after []byte
}

// commitChanges fetches commit h and its parent and lists the files it modified.
func (r *run) commitChanges(ctx context.Context, h plumbing.Hash) ([]fileChange, string, error) {
	if err := r.fetchHead(ctx, 1); err != nil {
		return nil, "", err
	}
	sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
	if err != nil {
		return nil, "", err
	}
	defer sess.Close()
	if err := r.fetchCommit(ctx, sess, h, 2); err != nil {
		return nil, "", err
	}
	c, err := object.GetCommit(r.st, h)
	if err != nil {
		return nil, "", err
	}
	if len(c.ParentHashes) != 1 {
		return nil, "", fmt.Errorf("commit has %d parents; only single-parent commits are reverted", len(c.ParentHashes))
	}
	parent, err := object.GetCommit(r.st, c.ParentHashes[0])
	if err != nil {
		return nil, "", err
	}
	objs := r.objects(ctx)
	var out []fileChange
	if err := diffTrees(objs, parent.TreeHash, c.TreeHash, "", func(path string, a, b plumbing.Hash) error {
		if a.IsZero() || b.IsZero() {
			return fmt.Errorf("%s was added or removed; only modifications are reverted", path)
		}
		before, err := blobBytes(objs, a)
		if err != nil {
			return err
		}
		after, err := blobBytes(objs, b)
		if err != nil {
			return err
		}
		out = append(out, fileChange{path: path, before: before, after: after})
		return nil
	}); err != nil {
		return nil, "", err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	subject, _, _ := strings.Cut(c.Message, "\n")
	return out, subject, nil
}

// diffTrees calls fn for every file whose blob differs between trees a and b, descending only into
// subtrees that differ (and fetching only those in a partial clone).
func diffTrees(objs *objects, a, b plumbing.Hash, prefix string, fn func(path string, a, b plumbing.Hash) error) error {
	if a == b {
		return nil
	}
	entries := func(h plumbing.Hash) (map[string]object.TreeEntry, error) {
		m := map[string]object.TreeEntry{}
		if h.IsZero() {
			return m, nil
		}
		t, err := objs.tree(h)
		if err != nil {
			return nil, err
		}
		for _, e := range t.Entries {
			m[e.Name] = e
		}
		return m, nil
	}
	ea, err := entries(a)
	if err != nil {
		return err
	}
	eb, err := entries(b)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for n := range ea {
		names[n] = true
	}
	for n := range eb {
		names[n] = true
	}
	for n := range names {
		x, y := ea[n], eb[n]
		if x.Hash == y.Hash && x.Mode == y.Mode {
			continue
		}
		p := prefix + n
		if x.Mode == filemode.Dir || y.Mode == filemode.Dir {
			var ha, hb plumbing.Hash
			if x.Mode == filemode.Dir {
				ha = x.Hash
			}
			if y.Mode == filemode.Dir {
				hb = y.Hash
			}
			if err := diffTrees(objs, ha, hb, p+"/", fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(p, x.Hash, y.Hash); err != nil {
			return err
		}
	}
	return nil
}

func blobBytes(objs *objects, h plumbing.Hash) ([]byte, error) {
	b, err := objs.blob(h)
	if err != nil {
		return nil, err
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// wrap redacts an error and names the remote.
func (r *run) wrap(err error) error {
	if err == nil {
		return nil
	}
	return redact(fmt.Errorf("git %s@%s: %w", r.o.URL, r.o.Branch, err), r.o.Auth)
}

// Read fetches commit rev and calls read with a view of its tree (in a partial clone, what read opens
// is fetched as it is read).
func Read(ctx context.Context, opts Options, rev string, read func(fs.FS) error) error {
	rd, err := Open(ctx, opts)
	if err != nil {
		return err
	}
	t, err := rd.Tree(ctx, rev)
	if err != nil {
		return err
	}
	return read(t)
}

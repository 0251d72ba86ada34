package git

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// historyChunk is how many commits a deepening fetch brings at once.
const historyChunk = 200

// historyBudget bounds a walk back through history by time, not by a number of commits (a busy
// monorepo branch gets thousands a week): Between and Contains look back as far as they get in it.
const historyBudget = 30 * time.Second

// Contains reports whether commit descendant contains commit ancestor (is it or has it in its
// history, as far back as historyBudget lets it look).
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

// fetchDeeper fetches commit h and up to historyChunk of its ancestors, commits only where possible.
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
		return r.fetchCommit(ctx, sess, h, historyChunk)
	})
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

// wrap redacts an error and names the remote.
func (r *run) wrap(err error) error {
	if err == nil {
		return nil
	}
	return redact(fmt.Errorf("git %s@%s: %w", r.o.URL, r.target(), err), r.o.Auth)
}

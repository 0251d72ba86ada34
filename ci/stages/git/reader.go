package git

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
)

// Reader reads a remote's commits, trees and history after one ref advertisement, fetching only
// what is read (in a partial clone: commits alone, then the trees and blobs opened). It is safe for
// concurrent use; every call takes the caller's context.
type Reader struct {
	mu sync.Mutex
	r  *run
	// Head is the branch's head when the Reader was opened; DefaultBranch the remote's HEAD branch.
	Head, DefaultBranch string
}

// CommitInfo is one commit's metadata.
type CommitInfo struct {
	SHA     string
	Parents []string
	Author  string // "Name <email>"
	When    time.Time
	Subject string
	// Message is the whole message (subject, body, trailers).
	Message string
}

// Open reads the remote's references (the branch must exist) and returns a Reader of it.
func Open(ctx context.Context, opts Options) (*Reader, error) {
	r, err := newRun(opts)
	if err != nil {
		return nil, redact(fmt.Errorf("git: %w", err), opts.Auth)
	}
	if err := r.fetchHead(ctx, 1); err != nil {
		return nil, r.wrap(err)
	}
	if len(opts.Prefetch) > 0 && !r.head.IsZero() {
		// The head's Prefetch directories whole, in one request each, rather than object by object
		// as they are read.
		c, err := object.GetCommit(r.st, r.head)
		if err == nil {
			err = r.prefetch(ctx, c)
		}
		if err != nil {
			return nil, r.wrap(err)
		}
	}
	rd := &Reader{r: r, Head: r.head.String()}
	for _, v := range r.caps.Get(capability.SymRef) {
		if from, to, ok := strings.Cut(v, ":"); ok && from == "HEAD" {
			rd.DefaultBranch = strings.TrimPrefix(to, "refs/heads/")
		}
	}
	return rd, nil
}

// commit fetches sha (if it is not here yet) and returns it.
func (rd *Reader) commit(ctx context.Context, sha string) (*object.Commit, error) {
	if !plumbing.IsHash(sha) {
		return nil, fmt.Errorf("%q is not a full commit SHA", sha)
	}
	h := plumbing.NewHash(sha)
	if c, err := object.GetCommit(rd.r.st, h); err == nil {
		return c, nil
	}
	if err := rd.r.fetchAt(ctx, h); err != nil {
		return nil, err
	}
	return object.GetCommit(rd.r.st, h)
}

func info(c *object.Commit) CommitInfo {
	ci := CommitInfo{SHA: c.Hash.String(), Author: c.Author.Name + " <" + c.Author.Email + ">", When: c.Author.When, Message: c.Message}
	ci.Subject, _, _ = strings.Cut(c.Message, "\n")
	for _, p := range c.ParentHashes {
		ci.Parents = append(ci.Parents, p.String())
	}
	return ci
}

// Commit returns a commit's metadata.
func (rd *Reader) Commit(ctx context.Context, sha string) (*CommitInfo, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	c, err := rd.commit(ctx, sha)
	if err != nil {
		return nil, rd.r.wrap(fmt.Errorf("read commit %s: %w", Short(sha), err))
	}
	ci := info(c)
	return &ci, nil
}

// Tree returns a read-only view of a commit's tree; in a partial clone what is opened is fetched
// when it is read.
func (rd *Reader) Tree(ctx context.Context, sha string) (fs.FS, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	c, err := rd.commit(ctx, sha)
	if err != nil {
		return nil, rd.r.wrap(fmt.Errorf("read commit %s: %w", Short(sha), err))
	}
	t, err := newTreeFS(c, rd.r.objects(ctx))
	if err != nil {
		return nil, rd.r.wrap(err)
	}
	return lockedFS{t, &rd.mu}, nil
}

// lockedFS serializes the lazy fetches of a tree with the Reader's other calls.
type lockedFS struct {
	fs fs.FS
	mu *sync.Mutex
}

func (l lockedFS) Open(name string) (fs.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fs.Open(name)
}

func (l lockedFS) ReadFile(name string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fs.ReadFile(l.fs, name)
}

func (l lockedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fs.ReadDir(l.fs, name)
}

// Between returns the commits that descendant has and ancestor has not, newest first, and whether
// descendant contains ancestor at all (as far back as historyBudget lets it look). A descendant equal to the
// ancestor contains it, with no commits between.
func (rd *Reader) Between(ctx context.Context, descendant, ancestor string) ([]CommitInfo, bool, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if descendant == ancestor {
		return nil, true, nil
	}
	if _, err := rd.commit(ctx, descendant); err != nil {
		return nil, false, rd.r.wrap(err)
	}
	a := plumbing.NewHash(ancestor)
	seen := map[plumbing.Hash]bool{}
	var path []CommitInfo
	found := false
	queue := []plumbing.Hash{plumbing.NewHash(descendant)}
	deadline := time.Now().Add(historyBudget)
	for len(queue) > 0 && time.Now().Before(deadline) {
		h := queue[0]
		queue = queue[1:]
		if seen[h] {
			continue
		}
		seen[h] = true
		if h == a {
			found = true
			continue
		}
		c, err := object.GetCommit(rd.r.st, h)
		if err != nil {
			if err := rd.r.fetchDeeper(ctx, h); err != nil {
				return nil, false, rd.r.wrap(err)
			}
			if c, err = object.GetCommit(rd.r.st, h); err != nil {
				continue
			}
		}
		path = append(path, info(c))
		queue = append(queue, c.ParentHashes...)
	}
	if !found {
		return nil, false, nil
	}
	// Keep the commits that reach the ancestor (drop side branches that never meet it).
	var out []CommitInfo
	for _, c := range path {
		if rd.r.reaches(plumbing.NewHash(c.SHA), []plumbing.Hash{a}) {
			out = append(out, c)
		}
	}
	return out, true, nil
}

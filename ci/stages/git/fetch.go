package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// The fetches speak upload-pack directly: go-git's Fetch cannot ask for a partial pack.
//
// When the server serves partial clones (it offers "filter" and "allow-reachable-sha1-in-want", as
// GitHub, GitLab and git with uploadpack.allowFilter + allowAnySHA1InWant do), only what the edit needs
// is fetched: the head commit alone, then its root tree, then each Options.Prefetch directory whole.
// Anything else the edit reads (a tree or a blob) is fetched when read. The cost of a bump is then the
// size of the manifests, not of the repository. Otherwise the head is fetched whole, at depth 1.

// fetchHead reads the branch's head from the remote and fetches it (with depth commits of history).
func (r *run) fetchHead(ctx context.Context, depth int) error {
	return r.retry(ctx, "fetch", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		adv, head, err := r.advertisedHead(ctx, sess)
		if err != nil {
			return err
		}
		r.caps = adv.Capabilities
		r.partial = adv.Capabilities.Supports(capability.Filter) && adv.Capabilities.Supports(capability.AllowReachableSHA1InWant)
		if head.IsZero() {
			r.head = head // a reference to create: nothing to fetch
			return nil
		}
		return r.fetchCommit(ctx, sess, head, depth)
	})
}

// advertisedHead reads the session's ref advertisement and the branch's head in it.
func (r *run) advertisedHead(ctx context.Context, sess transport.Session) (*packp.AdvRefs, plumbing.Hash, error) {
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	refs, err := adv.AllReferences()
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	ref, err := refs.Reference(r.ref)
	switch {
	case err != nil && r.o.CreateRef:
		return adv, plumbing.ZeroHash, nil // created by our push
	case err != nil && r.o.Ref != "":
		return nil, plumbing.ZeroHash, permanent(fmt.Errorf("reference %q not found on the remote", r.o.Ref))
	case err != nil:
		return nil, plumbing.ZeroHash, permanent(fmt.Errorf("branch %q not found on the remote", r.o.Branch))
	}
	return adv, ref.Hash(), nil
}

// fetchAt fetches a head we already know the hash of (from a push's ref advertisement), sparing a
// round trip; the capabilities are those of the first fetch.
func (r *run) fetchAt(ctx context.Context, head plumbing.Hash) error {
	return r.retry(ctx, "fetch", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		return r.fetchCommit(ctx, sess, head, 1)
	})
}

// maxCatchUp bounds how many commits a fetch of a new head may walk back to reach one we hold.
const maxCatchUp = 50

// fetchCommit fetches commit head and makes it r.head.
//
// The first fetch brings the head at depth (in a partial clone, the commits alone: prefetch follows).
// A later head (another run moved the branch) is fetched against the heads we already hold whole as
// "have"s, walking back at most maxCatchUp commits: one request brings exactly what changed since,
// and the new head's Prefetch directories are then whole too. Should the branch have been rewritten
// so that it no longer reaches our heads, prefetch fetches what is missing as the first time (and
// whatever else is missing is fetched when read).
func (r *run) fetchCommit(ctx context.Context, sess transport.UploadPackSession, head plumbing.Hash, depth int) error {
	if depth <= 1 && r.has(head) {
		r.head = head
		return nil
	}
	req := r.request()
	req.Wants = []plumbing.Hash{head}
	req.Capabilities.Set(capability.Shallow)
	shallows, err := r.st.Shallow()
	if err != nil {
		return err
	}
	req.Shallows = shallows
	catchUp := depth <= 1 && len(r.prefetched) > 0
	if catchUp {
		req.Haves = r.prefetched
		req.Depth = packp.DepthCommits(maxCatchUp)
	} else {
		req.Haves = r.known
		req.Depth = packp.DepthCommits(depth)
		if r.partial {
			req.Filter = packp.FilterTreeDepth(0) // the commits alone
			req.Capabilities.Set(capability.Filter)
		}
	}
	resp, err := sess.UploadPack(ctx, req)
	if err != nil && !errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return err
	}
	if resp != nil {
		if err := r.store(req, resp); err != nil {
			return err
		}
		if err := r.st.SetShallow(append(shallows, resp.Shallows...)); err != nil {
			return err
		}
	}
	if !r.has(head) {
		return permanent(fmt.Errorf("the remote did not send commit %s", Short(head.String())))
	}
	r.head = head
	r.known = append(r.known, head)
	if catchUp && r.reaches(head, r.prefetched) {
		c, err := object.GetCommit(r.st, head)
		if err != nil {
			return err
		}
		for _, h := range r.prefetchTrees(r.objects(ctx), c) {
			r.complete[h] = true
		}
	}
	return nil
}

// reaches reports whether one of targets is among the first maxCatchUp ancestors of c that we hold.
func (r *run) reaches(c plumbing.Hash, targets []plumbing.Hash) bool {
	queue, seen := []plumbing.Hash{c}, map[plumbing.Hash]bool{}
	for len(queue) > 0 && len(seen) <= maxCatchUp {
		h := queue[0]
		queue = queue[1:]
		if seen[h] {
			continue
		}
		seen[h] = true
		if slices.Contains(targets, h) {
			return true
		}
		if commit, err := object.GetCommit(r.st, h); err == nil {
			queue = append(queue, commit.ParentHashes...)
		}
	}
	return false
}

// prefetch brings the Prefetch directories of commit c here whole: one request for the root tree
// and one per directory not yet here.
func (r *run) prefetch(ctx context.Context, c *object.Commit) error {
	defer func() { r.prefetched = append(r.prefetched, c.Hash) }()
	if !r.partial {
		return nil
	}
	for _, h := range r.prefetchTrees(r.objects(ctx), c) {
		if r.complete[h] {
			continue
		}
		if err := r.fetchObjects(ctx, []plumbing.Hash{h}, ""); err != nil {
			return err
		}
		r.complete[h] = true
	}
	return nil
}

// prefetchTrees resolves the Prefetch directories of commit c to their trees' hashes.
func (r *run) prefetchTrees(objs *objects, c *object.Commit) []plumbing.Hash {
	var out []plumbing.Hash
	for _, p := range r.o.Prefetch {
		p = strings.Trim(p, "/")
		if p == "" || p == "." {
			out = append(out, c.TreeHash)
			continue
		}
		if e, err := objs.entry(c.TreeHash, p); err == nil && e.Mode == filemode.Dir {
			out = append(out, e.Hash)
		} // else not a directory of this commit: nothing to prefetch
	}
	return out
}

// request starts an upload-pack request with the capabilities the server advertised.
func (r *run) request() *packp.UploadPackRequest {
	return packp.NewUploadPackRequestFromCapabilities(r.caps)
}

// fetchObjects fetches objects by hash (and what they reach, less what filter omits and what the
// haves reach) in one request.
func (r *run) fetchObjects(ctx context.Context, want []plumbing.Hash, filter packp.Filter, haves ...plumbing.Hash) error {
	return r.retry(ctx, "fetch objects", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		req := r.request()
		req.Wants = want
		req.Haves = haves
		if filter != "" {
			req.Filter = filter
			req.Capabilities.Set(capability.Filter)
		}
		resp, err := sess.UploadPack(ctx, req)
		if err != nil {
			return err
		}
		return r.store(req, resp)
	})
}

func (r *run) store(req *packp.UploadPackRequest, resp *packp.UploadPackResponse) error {
	defer resp.Close()
	var body io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		body = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		body = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if err := packfile.UpdateObjectStorage(r.st, body); err != nil {
		return fmt.Errorf("read pack: %w", err)
	}
	return nil
}

func (r *run) has(h plumbing.Hash) bool {
	return r.st.HasEncodedObject(h) == nil
}

// objects gives access to trees and blobs, fetching those a partial clone lacks.
func (r *run) objects(ctx context.Context) *objects {
	return &objects{r: r, ctx: ctx}
}

type objects struct {
	r   *run
	ctx context.Context
}

// tree returns a tree, fetching that one tree (not what is below it) if it is missing.
func (o *objects) tree(h plumbing.Hash) (*object.Tree, error) {
	t, err := object.GetTree(o.r.st, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) && o.r.partial {
		if err := o.r.fetchObjects(o.ctx, []plumbing.Hash{h}, packp.FilterTreeDepth(0)); err != nil {
			return nil, err
		}
		t, err = object.GetTree(o.r.st, h)
	}
	return t, err
}

// blob returns a blob, fetching it if it is missing.
func (o *objects) blob(h plumbing.Hash) (*object.Blob, error) {
	b, err := object.GetBlob(o.r.st, h)
	if errors.Is(err, plumbing.ErrObjectNotFound) && o.r.partial {
		if err := o.r.fetchObjects(o.ctx, []plumbing.Hash{h}, ""); err != nil {
			return nil, err
		}
		b, err = object.GetBlob(o.r.st, h)
	}
	return b, err
}

// entry finds the entry at slash path p below the tree root.
func (o *objects) entry(root plumbing.Hash, p string) (*object.TreeEntry, error) {
	t, err := o.tree(root)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(p, "/")
	for i, name := range parts {
		var found *object.TreeEntry
		for j := range t.Entries {
			if t.Entries[j].Name == name {
				found = &t.Entries[j]
				break
			}
		}
		if found == nil {
			return nil, object.ErrEntryNotFound
		}
		if i == len(parts)-1 {
			return found, nil
		}
		if found.Mode != filemode.Dir {
			return nil, object.ErrEntryNotFound
		}
		if t, err = o.tree(found.Hash); err != nil {
			return nil, err
		}
	}
	return nil, object.ErrEntryNotFound
}

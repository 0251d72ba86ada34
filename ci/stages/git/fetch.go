package git

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// The fetches speak upload-pack directly (go-git's Fetch cannot ask for a partial pack). When the
// server offers it (filter + allow-reachable-sha1-in-want, as GitHub, GitLab and git with
// uploadpack.allowFilter/allowAnySHA1InWant do), the head is fetched without blobs and only the blobs
// under Options.Prefetch are fetched next, in one request; any other blob the edit reads is fetched
// when it is read. Otherwise the head is fetched whole, at depth 1.

// fetchHead fetches the branch head with depth commits of history and makes it r.head.
func (r *run) fetchHead(ctx context.Context, depth int) error {
	return r.retry(ctx, "fetch", func() error {
		sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
		if err != nil {
			return err
		}
		defer sess.Close()
		adv, err := sess.AdvertisedReferencesContext(ctx)
		if err != nil {
			return err
		}
		refs, err := adv.AllReferences()
		if err != nil {
			return err
		}
		ref, err := refs.Reference(r.ref)
		if err != nil {
			return permanent(fmt.Errorf("branch %q not found on the remote", r.o.Branch))
		}
		r.partial = adv.Capabilities.Supports(capability.Filter) && adv.Capabilities.Supports(capability.AllowReachableSHA1InWant)

		head := ref.Hash()
		if depth <= 1 && r.has(head) {
			r.head = head
			return nil
		}
		req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
		req.Wants = []plumbing.Hash{head}
		req.Depth = packp.DepthCommits(depth)
		req.Capabilities.Set(capability.Shallow)
		if req.Shallows, err = r.st.Shallow(); err != nil {
			return err
		}
		req.Haves = r.known
		if r.partial {
			req.Filter = packp.FilterBlobNone()
			req.Capabilities.Set(capability.Filter)
		}
		resp, err := sess.UploadPack(ctx, req)
		if err != nil && !errors.Is(err, transport.ErrEmptyUploadPackRequest) {
			return err
		}
		if resp != nil {
			if err := r.store(req, resp); err != nil {
				return err
			}
			shallows := append(req.Shallows, resp.Shallows...)
			if err := r.st.SetShallow(shallows); err != nil {
				return err
			}
		}
		if !r.has(head) {
			return permanent(fmt.Errorf("the remote did not send commit %s", shortSHA(head.String())))
		}
		r.head = head
		r.known = append(r.known, head)
		return r.prefetch(ctx, head)
	})
}

// prefetch fetches, in one request, the missing blobs under the Prefetch paths of the head's tree.
func (r *run) prefetch(ctx context.Context, head plumbing.Hash) error {
	if !r.partial || len(r.o.Prefetch) == 0 {
		return nil
	}
	c, err := object.GetCommit(r.st, head)
	if err != nil {
		return err
	}
	root, err := c.Tree()
	if err != nil {
		return err
	}
	var want []plumbing.Hash
	for _, p := range r.o.Prefetch {
		t := root
		if p = strings.Trim(p, "/"); p != "" && p != "." {
			if t, err = root.Tree(p); err != nil {
				continue // not a directory of this commit: nothing to prefetch
			}
		}
		walker := object.NewTreeWalker(t, true, nil)
		for {
			_, e, err := walker.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				walker.Close()
				return err
			}
			if e.Mode.IsFile() && e.Mode != filemode.Submodule && !r.has(e.Hash) {
				want = append(want, e.Hash)
			}
		}
		walker.Close()
	}
	return r.fetchBlobs(ctx, want)
}

// fetchBlobs fetches the given objects (by hash) from a server that allows wanting any reachable object.
func (r *run) fetchBlobs(ctx context.Context, want []plumbing.Hash) error {
	if len(want) == 0 {
		return nil
	}
	sess, err := r.cli.NewUploadPackSession(r.ep, r.auth)
	if err != nil {
		return err
	}
	defer sess.Close()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	req.Wants = want
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return fmt.Errorf("fetch %d objects: %w", len(want), err)
	}
	return r.store(req, resp)
}

// missing fetches one object the edit tried to read (used by the tree view of a partial clone).
func (r *run) missing(ctx context.Context) func(plumbing.Hash) error {
	return func(h plumbing.Hash) error {
		if !r.partial {
			return plumbing.ErrObjectNotFound
		}
		return r.retry(ctx, "fetch object", func() error { return r.fetchBlobs(ctx, []plumbing.Hash{h}) })
	}
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

// Package registry checks, before anything is deployed, that image tags exist in their registry and
// resolves them to digests (the seed's "Verify Docker Tags" step), with go-containerregistry. It needs
// no container: bump uses the digests to pin the manifests.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Auth is the registry login; the zero value is anonymous.
type Auth struct {
	Username, Password string
	// PlainHTTP talks HTTP to any registry (go-containerregistry does for localhost and loopback
	// addresses by itself): the sandbox's in-engine registry.
	PlainHTTP bool
}

// NameOptions are the reference-parsing options that go with the login.
func (a Auth) NameOptions() []name.Option {
	if a.PlainHTTP {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Image is a resolved reference.
type Image struct {
	Ref    string // as given: repo:tag
	Digest string // sha256:…
}

// Pinned is "repo:tag@sha256:…".
func (i Image) Pinned() string { return i.Ref + "@" + i.Digest }

// Repository is the reference without tag or digest.
func (i Image) Repository() string {
	r, err := name.ParseReference(i.Ref, name.WeakValidation)
	if err != nil {
		return i.Ref
	}
	return r.Context().Name()
}

// Tag is the reference's tag.
func (i Image) Tag() string {
	if t, err := name.NewTag(i.Ref, name.WeakValidation); err == nil {
		return t.TagStr()
	}
	return ""
}

// RemoteOptions are go-containerregistry's request options with this login.
func (a Auth) RemoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if a.Username != "" || a.Password != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: a.Username, Password: a.Password}))
	}
	return opts
}

// Scrub keeps the password out of an error's text (nil stays nil).
func (a Auth) Scrub(err error) error {
	if err == nil || a.Password == "" || !strings.Contains(err.Error(), a.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), a.Password, "***"))
}

// Resolve looks up every reference's digest (a HEAD of its manifest, no download) and fails, naming
// every missing tag, unless all exist.
func Resolve(ctx context.Context, refs []string, auth Auth) ([]Image, error) {
	opts := auth.RemoteOptions(ctx)
	var out []Image
	var missing []string
	for _, ref := range refs {
		r, err := name.ParseReference(ref, auth.NameOptions()...)
		if err != nil {
			return nil, fmt.Errorf("registry: %q is not an image reference: %w", ref, err)
		}
		desc, err := remote.Head(r, opts...)
		if err != nil {
			var terr *transport.Error
			switch {
			case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
				missing = append(missing, ref)
				continue
			case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
				return nil, fmt.Errorf("registry: %s: access denied (%d): check the registry username and password", r.Context().RegistryStr(), terr.StatusCode)
			}
			return nil, fmt.Errorf("registry: %s: %w", ref, auth.Scrub(err))
		}
		out = append(out, Image{Ref: ref, Digest: desc.Digest.String()})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("registry: not pushed (tag not found): %s", strings.Join(missing, ", "))
	}
	return out, nil
}

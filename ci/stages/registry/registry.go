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

// Auth is the registry login; the zero value is anonymous. The login is sent to Host only: every
// other registry an image reference names (an overlay's entry may name any) is read anonymously, so
// whoever can write the GitOps repository cannot collect the token with a registry of their own.
type Auth struct {
	Username, Password string
	// Host is the registry the login belongs to (host[:port], as in --registry); without it the
	// login is sent nowhere.
	Host string
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

// RemoteOptions are go-containerregistry's request options with this login (for its host only).
func (a Auth) RemoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if a.Username != "" || a.Password != "" {
		opts = append(opts, remote.WithAuthFromKeychain(keychain{a}))
	}
	return opts
}

// Owns reports whether the login belongs to the registry of a reference's registry (host[:port]).
func (a Auth) Owns(registry string) bool {
	if a.Host == "" {
		return false
	}
	own, err1 := name.NewRegistry(a.Host, name.WeakValidation)
	other, err2 := name.NewRegistry(registry, name.WeakValidation)
	return err1 == nil && err2 == nil && own.RegistryStr() == other.RegistryStr()
}

// keychain gives the login to its own registry and nothing to any other.
type keychain struct{ a Auth }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.a.Owns(r.RegistryStr()) {
		return &authn.Basic{Username: k.a.Username, Password: k.a.Password}, nil
	}
	return authn.Anonymous, nil
}

// Denied explains an access refused by registry: a wrong login for our own registry, or a
// registry that needs a login we never send it.
func (a Auth) Denied(registry string, status int) error {
	if (a.Username != "" || a.Password != "") && !a.Owns(registry) {
		return fmt.Errorf("registry: %s: access denied (%d): it needs a login, and the registry credentials given are for %s only (they are never sent to another registry); make the image readable anonymously or deploy it from %s",
			registry, status, a.Host, a.Host)
	}
	return fmt.Errorf("registry: %s: access denied (%d): check the registry username and password", registry, status)
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
				return nil, auth.Denied(r.Context().RegistryStr(), terr.StatusCode)
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

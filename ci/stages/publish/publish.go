// Package publish pushes the built images to a registry under the release version and the source
// commit's short SHA, and returns digest-pinned references.
package publish

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"wanderlust.dev/pipeline/ci/internal/dagger"
)

// Options say where to push.
type Options struct {
	// Registry is the repository prefix, e.g. "ghcr.io/wanderlust-app": images go to
	// <Registry>/wanderlust-<name>.
	Registry string
	// Username and Password log in to the registry (the password is a secret).
	Username string
	Password *dagger.Secret
	// Version is the release tag (e.g. "1.4.0"); SourceCommit, when set, adds a tag of its first 12 hex digits.
	Version, SourceCommit string
	// Variants are other platforms' builds of an image, by name: the tag is then a multi-platform
	// index of the image and them.
	Variants map[string][]*dagger.Container
}

// Published is one pushed image.
type Published struct {
	Name   string // backend, frontend
	Ref    string // <registry>/wanderlust-<name>:<version>@sha256:…
	Digest string
}

var (
	tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	shaPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
)

// Images pushes every image (by name) concurrently and returns them sorted by name.
func Images(ctx context.Context, images map[string]*dagger.Container, o Options) ([]Published, error) {
	if o.Registry == "" || strings.Contains(o.Registry, "://") {
		return nil, fmt.Errorf("publish: registry %q: want a repository prefix such as ghcr.io/owner", o.Registry)
	}
	if !tagPattern.MatchString(o.Version) {
		return nil, fmt.Errorf("publish: version %q is not a valid image tag", o.Version)
	}
	if o.SourceCommit != "" && !shaPattern.MatchString(o.SourceCommit) {
		return nil, fmt.Errorf("publish: source commit %q is not a hex SHA", o.SourceCommit)
	}
	host, _, _ := strings.Cut(o.Registry, "/")
	out := make([]Published, 0, len(images))
	results := make(chan Published, len(images))
	g, ctx := errgroup.WithContext(ctx)
	for name, img := range images {
		g.Go(func() error {
			if o.Password != nil {
				img = img.WithRegistryAuth(host, o.Username, o.Password)
			}
			repo := strings.TrimRight(o.Registry, "/") + "/wanderlust-" + name
			opts := dagger.ContainerPublishOpts{PlatformVariants: o.Variants[name]}
			ref, err := img.Publish(ctx, repo+":"+o.Version, opts)
			if err != nil {
				return fmt.Errorf("publish %s: %w", name, err)
			}
			_, digest, ok := strings.Cut(ref, "@")
			if !ok {
				return fmt.Errorf("publish %s: the registry returned %q, without a digest", name, ref)
			}
			if o.SourceCommit != "" {
				short := o.SourceCommit[:min(12, len(o.SourceCommit))]
				if _, err := img.Publish(ctx, repo+":"+short, opts); err != nil {
					return fmt.Errorf("publish %s: tag %s: %w", name, short, err)
				}
			}
			results <- Published{Name: name, Ref: repo + ":" + o.Version + "@" + digest, Digest: digest}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	close(results)
	for p := range results {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

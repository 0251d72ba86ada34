package keyless

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"wanderlust.dev/pipeline/ci/stages/evidence"
)

// stored is one bundle read from the image's referrers.
type stored struct {
	digest        string // the referrer manifest's
	predicateType string // as annotated
	created       string
	bundle        []byte
}

// rawManifest is a manifest pushed as is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// put stores one bundle as a referrer of d (an OCI 1.1 artifact manifest whose subject is the
// image), as cosign v3's WriteAttestationNewBundleFormat does; it returns the manifest's digest.
func put(ctx context.Context, d name.Digest, bundle []byte, predicateType string, r evidence.Remote) (string, error) {
	opts := r.Auth.RemoteOptions(ctx)
	subject, err := remote.Head(d, opts...)
	if err != nil {
		return "", r.Auth.Scrub(err)
	}
	layer := static.NewLayer(bundle, BundleMediaType)
	config := static.NewLayer([]byte("{}"), emptyMediaType)
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(d.Context(), l, opts...); err != nil {
			return "", r.Auth.Scrub(err)
		}
	}
	desc := func(l v1.Layer, mt types.MediaType) v1.Descriptor {
		dg, _ := l.Digest()
		sz, _ := l.Size()
		return v1.Descriptor{MediaType: mt, Digest: dg, Size: sz}
	}
	cfg := desc(config, emptyMediaType)
	cfg.ArtifactType = BundleMediaType
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: BundleMediaType,
		Config: cfg, Layers: []v1.Descriptor{desc(layer, BundleMediaType)},
		Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations: map[string]string{annotationCreated: time.Now().UTC().Format(time.RFC3339),
			annotationContent: "dsse-envelope", annotationPredicate: predicateType}}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	dg, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	if err := remote.Put(d.Context().Digest(dg.String()), rawManifest{raw, types.OCIManifestSchema1}, opts...); err != nil {
		return "", r.Auth.Scrub(err)
	}
	return dg.String(), nil
}

// list reads the bundles among d's referrers (the API, or the fallback tag), oldest first.
func list(ctx context.Context, d name.Digest, r evidence.Remote) ([]stored, error) {
	opts := r.Auth.RemoteOptions(ctx)
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil, fmt.Errorf("reading the referrers: %w", r.Auth.Scrub(err))
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []stored
	for _, desc := range m.Manifests {
		img, err := remote.Image(d.Context().Digest(desc.Digest.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("reading referrer %s: %w", desc.Digest, r.Auth.Scrub(err))
		}
		mf, err := img.Manifest()
		if err != nil || len(mf.Layers) != 1 || !strings.HasPrefix(string(mf.Layers[0].MediaType), "application/vnd.dev.sigstore.bundle") {
			continue // another tool's referrer (as cosign, by its one layer's media type)
		}
		l, err := img.LayerByDigest(mf.Layers[0].Digest)
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, r.Auth.Scrub(err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			return nil, r.Auth.Scrub(err)
		}
		out = append(out, stored{digest: desc.Digest.String(), predicateType: mf.Annotations[annotationPredicate],
			created: mf.Annotations[annotationCreated], bundle: b})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].created < out[j].created })
	return out, nil
}

// Package evidence makes, stores and checks what proves an image: a CycloneDX SBOM, a SLSA v1
// provenance statement and the scan's verdict, each an in-toto Statement v1 in a signed DSSE
// envelope, and a signature of the image digest — all in cosign's format, so that `cosign verify`
// and `cosign verify-attestation` accept them, and stored where cosign looks by default: the tags
// sha256-<hex>.sig and sha256-<hex>.att next to the image in its repository (every registry has
// tags; OCI 1.1 referrers are not read by cosign unless asked and not served by every registry).
//
// It needs no container: signing uses sigstore's signature and DSSE packages, the statements
// in-toto's attestation types, the SBOM CycloneDX's, the registry go-containerregistry.
package evidence

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/stages/registry"
)

// Predicate types of the three attestations.
const (
	// SLSAProvenance is SLSA v1 provenance (`cosign verify-attestation --type slsaprovenance1`).
	SLSAProvenance = "https://slsa.dev/provenance/v1"
	// CycloneDX is a CycloneDX SBOM (`--type cyclonedx`).
	CycloneDX = "https://cyclonedx.org/bom"
	// ScanVerdict is the security gate's verdict on the image (`--type` with this URI).
	ScanVerdict = "https://wanderlust.dev/attestations/scan-verdict/v1"
)

// Media types of cosign's storage.
const (
	simpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseMediaType          = "application/vnd.dsse.envelope.v1+json"
	intotoPayloadType      = "application/vnd.in-toto+json"
	signatureAnnotation    = "dev.cosignproject.cosign/signature"
	predicateAnnotation    = "predicateType"
)

// Remote says how to reach the registry.
type Remote struct {
	Auth registry.Auth
}

// Existing parses a digest-pinned reference and checks that the registry has the image.
func (r Remote) Existing(ctx context.Context, image string) (name.Digest, error) {
	d, err := ParseDigest(image, r.Auth.NameOptions()...)
	if err != nil {
		return name.Digest{}, err
	}
	if _, err := remote.Head(d, r.Auth.RemoteOptions(ctx)...); err != nil {
		return name.Digest{}, fmt.Errorf("evidence: %s: the image is not in the registry: %w", d, r.Auth.Scrub(err))
	}
	return d, nil
}

// ParseDigest reads repo@sha256:… (a tag before the digest is allowed and ignored).
func ParseDigest(image string, opts ...name.Option) (name.Digest, error) {
	d, err := name.NewDigest(image, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("evidence: %q is not a digest-pinned image reference (repo@sha256:…): %w", image, err)
	}
	return d, nil
}

// tagFor is cosign's tag for an image's signatures (".sig") or attestations (".att").
func tagFor(d name.Digest, suffix string) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + suffix)
}

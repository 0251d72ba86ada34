// Package keyless signs images and their attestations without a key to keep — an ephemeral key, a
// short-lived Fulcio certificate naming the CI job's OIDC identity, each signature logged in a Rekor
// v2 log and timestamped by a timestamp authority — and checks them by that identity.
//
// Storage: each signature is a Sigstore bundle (v0.3) holding a DSSE envelope of an in-toto
// statement, stored as an OCI 1.1 referrer of the image — what cosign v3 writes and reads by default
// (cosign v2.6: --new-bundle-format). The image's own signature is cosign's statement of predicate
// type https://sigstore.dev/cosign/sign/v1 about the digest; the SBOM, provenance and scan verdict
// are their own statements. Registries without the referrers API get the fallback tag
// sha256-<hex> (go-containerregistry keeps it, as cosign does). Not cosign's classic .sig/.att
// tags: a Rekor v2 entry is proved by a checkpoint and an inclusion proof, and its time by a signed
// RFC 3161 timestamp, which only the bundle has room for.
//
// It uses sigstore-go (signing, verification, the trusted root over TUF), which is why it lives in
// the GitOps program and not in the Dagger module's Go graph.
package keyless

import (
	"fmt"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"

	"wanderlust.dev/pipeline/ci/stages/evidence"
)

// The public Sigstore instances, the defaults.
const (
	PublicFulcio = "https://fulcio.sigstore.dev"
	PublicRekor  = "https://log2025-1.rekor.sigstore.dev"
	PublicTSA    = "https://timestamp.sigstore.dev/api/v1/timestamp"
)

// Media type and annotations of the stored bundles (cosign v3's).
const (
	BundleMediaType     = "application/vnd.dev.sigstore.bundle.v0.3+json"
	emptyMediaType      = "application/vnd.oci.empty.v1+json"
	annotationPredicate = "dev.sigstore.bundle.predicateType"
	annotationContent   = "dev.sigstore.bundle.content"
	annotationCreated   = "org.opencontainers.image.created"
	// CosignSign is the predicate type of cosign's image signature statement.
	CosignSign        = "https://sigstore.dev/cosign/sign/v1"
	intotoPayloadType = "application/vnd.in-toto+json"
)

// Services are the Sigstore instances signing uses (empty: the public ones).
type Services struct {
	FulcioURL, RekorURL, TSAURL string
}

// WithDefaults fills the empty URLs with the public instances.
func (s Services) WithDefaults() Services {
	if s.FulcioURL == "" {
		s.FulcioURL = PublicFulcio
	}
	if s.RekorURL == "" {
		s.RekorURL = PublicRekor
	}
	if s.TSAURL == "" {
		s.TSAURL = PublicTSA
	}
	return s
}

// Validate checks the URLs: http(s), a host, no credentials.
func (s Services) Validate() error {
	return evidence.CheckServices(s.FulcioURL, s.RekorURL, s.TSAURL)
}

// Identity is who must have signed (evidence.Identity).
type Identity = evidence.Identity

// TrustedRoot reads a trusted_root.json; without one, it fetches trusted_root.json over TUF with o,
// each piece of TUF metadata verified from the root o names (nil: PublicTUF, Sigstore's public
// repository, from the root sigstore-go embeds).
func TrustedRoot(trustedRootJSON []byte, o *tuf.Options) (root.TrustedMaterial, error) {
	if len(trustedRootJSON) > 0 {
		tr, err := root.NewTrustedRootFromJSON(trustedRootJSON)
		if err != nil {
			return nil, fmt.Errorf("keyless: --trusted-root: %w", err)
		}
		return tr, nil
	}
	if o == nil {
		o = PublicTUF("")
	}
	tr, err := root.FetchTrustedRootWithOptions(o)
	if err != nil {
		return nil, fmt.Errorf("keyless: the trusted root over TUF (%s): %w", o.RepositoryBaseURL, err)
	}
	return tr, nil
}

// PublicTUF are the TUF options of Sigstore's public trusted root, cached under cacheDir (empty:
// sigstore-go's default, under the home directory).
func PublicTUF(cacheDir string) *tuf.Options {
	o := tuf.DefaultOptions()
	if cacheDir != "" {
		o = o.WithCachePath(cacheDir)
	}
	return o
}

// subjectOf names a certificate's identity as the reports do.
func subjectOf(san, issuer string) string {
	return strings.TrimSpace(san) + " (issuer " + issuer + ")"
}

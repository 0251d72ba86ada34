package keyless

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Checker verifies an image's bundles by identity: the certificate chains to the trusted root's
// Fulcio, was valid when a trusted timestamp (TSA, or a Rekor v1 entry's) says the signature was
// made, the signature is in a trusted Rekor log (inclusion proof against a signed checkpoint, or a
// signed entry timestamp), SCTs are checked when the root has CT logs, the statement is about the
// image's digest, and the certificate names the required identity and issuer.
type Checker struct {
	tr       root.TrustedMaterial
	id       Identity
	match    verify.CertificateIdentity
	verifier *verify.Verifier
}

// NewChecker checks the identity rules and prepares the verifier.
func NewChecker(tr root.TrustedMaterial, id Identity) (*Checker, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	match, err := verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.Subject, id.SubjectRegexp)
	if err != nil {
		return nil, fmt.Errorf("keyless: identity: %w", err)
	}
	opts := []verify.VerifierOption{verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1)}
	if len(tr.CTLogs()) > 0 {
		opts = append(opts, verify.WithSignedCertificateTimestamps(1))
	}
	v, err := verify.NewVerifier(tr, opts...)
	if err != nil {
		return nil, fmt.Errorf("keyless: verifier: %w", err)
	}
	return &Checker{tr: tr, id: id, match: match, verifier: v}, nil
}

// Signer names the required identity.
func (c *Checker) Signer() string { return "identity " + c.id.Required() }

// Collect reads the image's bundles and keeps those that verify, are about its digest and name
// the identity; each rejected one says why (the identity found against the one required, the
// log, the time, the signature).
func (c *Checker) Collect(ctx context.Context, image string, r evidence.Remote) (f *evidence.Found, err error) {
	ctx, span := telemetry.Start(ctx, "evidence.collect", telemetry.Attr("image", image), telemetry.Attr("mode", "keyless"),
		telemetry.Attr("identity", c.id.Required()))
	defer func() { telemetry.End(span, err) }()
	d, err := r.Existing(ctx, image)
	if err != nil {
		return nil, err
	}
	bundles, err := list(ctx, d, r)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: %w", d, err)
	}
	alg, hexDigest, _ := strings.Cut(d.DigestStr(), ":")
	raw, err := hex.DecodeString(hexDigest)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: digest: %w", d, err)
	}
	f = &evidence.Found{Image: d.String(), Attestations: map[string]*evidence.Attestation{}}
	for _, s := range bundles {
		piece := "attestation: " + s.predicateType
		if s.predicateType == CosignSign {
			piece = "signature"
			f.Signatures++
		}
		payload, who, err := c.open(s.bundle, alg, raw)
		if err != nil {
			f.Rejected = append(f.Rejected, piece+": "+err.Error())
			continue
		}
		a, err := evidence.CheckStatement(payload, s.predicateType, d)
		if err != nil {
			f.Rejected = append(f.Rejected, piece+": "+err.Error())
			continue
		}
		if a.PredicateType != s.predicateType {
			f.Rejected = append(f.Rejected, fmt.Sprintf("%s: the statement's predicate type is %s", piece, a.PredicateType))
			continue
		}
		if a.PredicateType == CosignSign {
			f.Signed, f.SignedBy = true, who
			continue
		}
		a.Envelope = evidence.EnvelopeID(s.bundle)
		f.Attestations[a.PredicateType] = a // oldest first: the newest wins
	}
	return f, nil
}

// open verifies one bundle for the image digest and returns its statement and who signed it.
func (c *Checker) open(raw []byte, alg string, digest []byte) ([]byte, string, error) {
	var pb protobundle.Bundle
	if err := protojson.Unmarshal(raw, &pb); err != nil {
		return nil, "", fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	b, err := bundle.NewBundle(&pb)
	if err != nil {
		return nil, "", fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	if pb.GetDsseEnvelope() == nil {
		return nil, "", errors.New("the bundle holds no DSSE envelope")
	}
	if len(pb.GetVerificationMaterial().GetTlogEntries()) == 0 {
		return nil, "", errors.New("not in a transparency log (the bundle has no Rekor entry)")
	}
	res, err := c.verifier.Verify(b, verify.NewPolicy(verify.WithArtifactDigest(alg, digest), verify.WithoutIdentitiesUnsafe()))
	if err != nil {
		return nil, "", fmt.Errorf("does not verify: %w%s", err, c.outsideValidity(b))
	}
	if res.Signature == nil || res.Signature.Certificate == nil {
		return nil, "", errors.New("signed by a key, not a certificate")
	}
	cert := *res.Signature.Certificate
	who := subjectOf(cert.SubjectAlternativeName, cert.Issuer)
	if err := c.match.Verify(cert); err != nil {
		return nil, "", fmt.Errorf("signed by %s, want %s", who, c.id.Required())
	}
	return pb.GetDsseEnvelope().GetPayload(), who, nil
}

// outsideValidity says, when a trusted timestamp of the signature falls outside the certificate's
// validity, when each was (sigstore-go says only that the leaf did not verify).
func (c *Checker) outsideValidity(b *bundle.Bundle) string {
	vc, err := b.VerificationContent()
	if err != nil || vc.Certificate() == nil {
		return ""
	}
	cert := vc.Certificate()
	stamps, _, err := verify.VerifySignedTimestamp(b, c.tr)
	if err != nil {
		return ""
	}
	for _, ts := range stamps {
		switch {
		case ts.Time.After(cert.NotAfter):
			return fmt.Sprintf(" (the certificate had expired when the signature was made: valid %s to %s, signed at %s by the timestamp authority)",
				cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), ts.Time.UTC().Format(time.RFC3339))
		case ts.Time.Before(cert.NotBefore):
			return fmt.Sprintf(" (the certificate was not yet valid when the signature was made: valid from %s, signed at %s by the timestamp authority)",
				cert.NotBefore.UTC().Format(time.RFC3339), ts.Time.UTC().Format(time.RFC3339))
		}
	}
	return ""
}

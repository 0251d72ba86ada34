package keyless

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// SignOptions configure keyless signing.
type SignOptions struct {
	Services
	Token TokenSource
	// TrustedRoot, when set, verifies each bundle before it is stored (sigstore-go does).
	TrustedRoot root.TrustedMaterial
	// Certificates, when set, replaces Fulcio (tests: a certificate of a chosen validity).
	Certificates sign.CertificateProvider
}

// Signer signs keyless: one ephemeral key and one certificate for everything it signs.
type Signer struct {
	o       SignOptions
	keypair *sign.EphemeralKeypair
	certs   *onceCertificate
	tsa     *sign.TimestampAuthority
	rekor   *sign.Rekor
}

// NewSigner checks the options (URLs, that a token can be had) and makes the ephemeral key.
func NewSigner(o SignOptions) (*Signer, error) {
	o.Services = o.Services.WithDefaults()
	if err := o.Services.Validate(); err != nil {
		return nil, err
	}
	if o.Certificates == nil {
		if err := o.Token.Check(); err != nil {
			return nil, err
		}
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, fmt.Errorf("keyless: ephemeral key: %w", err)
	}
	certs := o.Certificates
	if certs == nil {
		certs = sign.NewFulcio(&sign.FulcioOptions{BaseURL: o.FulcioURL, Timeout: 30 * time.Second, Retries: 1})
	}
	return &Signer{o: o, keypair: kp, certs: &onceCertificate{p: certs},
		tsa:   sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: o.TSAURL, Timeout: 30 * time.Second, Retries: 1}),
		rekor: sign.NewRekor(&sign.RekorOptions{BaseURL: o.RekorURL, Timeout: 90 * time.Second, Retries: 1, Version: 2})}, nil
}

// onceCertificate asks its provider once (Fulcio: one certificate per run) and hands out that one.
type onceCertificate struct {
	p    sign.CertificateProvider
	mu   sync.Mutex
	cert []byte
}

func (c *onceCertificate) GetCertificate(ctx context.Context, kp sign.Keypair, o *sign.CertificateProviderOptions) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil {
		return c.cert, nil
	}
	cert, err := c.p.GetCertificate(ctx, kp, o)
	if err != nil {
		// sigstore-go's Fulcio errors carry the status and body, never the token.
		return nil, fmt.Errorf("keyless: certificate from Fulcio: %w", err)
	}
	c.cert = cert
	return cert, nil
}

// Identity is the certificate's subject and issuer, once a certificate was had.
func (s *Signer) Identity() string {
	s.certs.mu.Lock()
	defer s.certs.mu.Unlock()
	if s.certs.cert == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(s.certs.cert)
	if err != nil {
		return ""
	}
	sum, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return ""
	}
	return subjectOf(sum.SubjectAlternativeName, sum.Issuer)
}

// Attach signs the image's digest (cosign's sign statement) and each statement, logs each in Rekor
// with a timestamp, and stores the bundles as referrers of the image. The image must exist.
func (s *Signer) Attach(ctx context.Context, image string, statements []evidence.Statement, r evidence.Remote) (att *evidence.Attached, err error) {
	ctx, span := telemetry.Start(ctx, "evidence.attest", telemetry.Attr("image", image), telemetry.Attr("mode", "keyless"),
		telemetry.Attr("fulcio", s.o.FulcioURL), telemetry.Attr("rekor", s.o.RekorURL), telemetry.Attr("tsa", s.o.TSAURL))
	defer func() {
		if att != nil {
			span.SetAttributes(telemetry.Attr("identity", att.KeyID))
		}
		telemetry.End(span, err)
	}()
	d, err := r.Existing(ctx, image)
	if err != nil {
		return nil, err
	}
	token := ""
	if s.o.Certificates == nil {
		if token, err = s.o.Token.Get(ctx); err != nil {
			return nil, err
		}
	}
	signStatement, err := cosignStatement(d)
	if err != nil {
		return nil, err
	}
	all := append([]evidence.Statement{{PredicateType: CosignSign, JSON: signStatement}}, statements...)
	// One certificate first, so that the parallel signings below share it.
	if _, err := s.certs.GetCertificate(ctx, s.keypair, &sign.CertificateProviderOptions{IDToken: token}); err != nil {
		return nil, fmt.Errorf("keyless: %s: %w", d, err)
	}
	bundles := make([][]byte, len(all))
	g, gctx := errgroup.WithContext(ctx)
	for i, st := range all {
		g.Go(func() error {
			b, err := sign.Bundle(&sign.DSSEData{Data: st.JSON, PayloadType: intotoPayloadType}, s.keypair, sign.BundleOptions{
				CertificateProvider: s.certs, CertificateProviderOptions: &sign.CertificateProviderOptions{IDToken: token},
				TimestampAuthorities: []*sign.TimestampAuthority{s.tsa}, TransparencyLogs: []sign.Transparency{s.rekor},
				Context: gctx, TrustedRoot: s.o.TrustedRoot})
			if err != nil {
				return fmt.Errorf("keyless: %s: signing the %s statement: %w", d, short(st.PredicateType), err)
			}
			if bundles[i], err = protojson.Marshal(b); err != nil {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := &evidence.Attached{Image: d.String(), Envelopes: map[string]string{}, KeyID: s.Identity()}
	for i, st := range all {
		dg, err := put(ctx, d, bundles[i], st.PredicateType, r)
		if err != nil {
			return nil, fmt.Errorf("keyless: %s: storing the %s bundle: %w", d, short(st.PredicateType), err)
		}
		if i == 0 {
			out.Signature = d.Context().Digest(dg).String()
			continue
		}
		out.Envelopes[st.PredicateType] = evidence.EnvelopeID(bundles[i])
	}
	out.Attestations = "referrers of " + d.String()
	return out, nil
}

// cosignStatement is cosign v3's image signature: an in-toto statement about the digest with
// predicate type CosignSign and an empty predicate.
func cosignStatement(d name.Digest) ([]byte, error) {
	alg, hexDigest, ok := strings.Cut(d.DigestStr(), ":")
	if !ok {
		return nil, errors.New("keyless: bad digest " + d.DigestStr())
	}
	return json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"digest": map[string]string{alg: hexDigest}}},
		"predicateType": CosignSign,
		"predicate":     map[string]any{},
	})
}

// short is the last element of a predicate type URI, for messages.
func short(predicateType string) string {
	switch predicateType {
	case CosignSign:
		return "signature"
	case evidence.CycloneDX:
		return "sbom"
	case evidence.SLSAProvenance:
		return "provenance"
	case evidence.ScanVerdict:
		return "scan-verdict"
	}
	return predicateType
}

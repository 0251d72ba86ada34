package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Found is the verified evidence of one image: only what its signature checks out for is here.
type Found struct {
	Image string // repo@sha256:…
	// Signed says a valid signature of the digest was found; Signatures counts all stored.
	Signed     bool
	Signatures int
	// SignedBy names the signer found, when the checker knows more than what it required (the
	// certificate's identity and issuer).
	SignedBy string
	// Attestations are the verified statements about this digest, the newest of each predicate type.
	Attestations map[string]*Attestation
	// Rejected says why stored pieces were not accepted (another key, another digest…).
	Rejected []string
}

// Attestation is one verified statement.
type Attestation struct {
	PredicateType string
	Envelope      string          // sha256 of the DSSE envelope, as stored
	Predicate     json.RawMessage // the statement's predicate
}

// Signer is "key <key ID>".
func (v *Verifier) Signer() string { return "key " + v.KeyID }

// Collect reads the image's signatures and attestations from cosign's tags and keeps those that
// the key verifies and that are about this digest. A missing tag is no error: nothing was found.
func (v *Verifier) Collect(ctx context.Context, image string, r Remote) (*Found, error) {
	d, err := r.Existing(ctx, image)
	if err != nil {
		return nil, err
	}
	f := &Found{Image: d.String(), Attestations: map[string]*Attestation{}}
	sigs, err := read(ctx, tagFor(d, ".sig"), r)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: reading the signatures: %w", d, err)
	}
	f.Signatures = len(sigs)
	for _, l := range sigs {
		if err := v.checkSignature(l, d); err != nil {
			f.Rejected = append(f.Rejected, "signature: "+err.Error())
			continue
		}
		f.Signed = true
	}
	atts, err := read(ctx, tagFor(d, ".att"), r)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: reading the attestations: %w", d, err)
	}
	for _, l := range atts {
		a, err := v.checkAttestation(l, d)
		if err != nil {
			f.Rejected = append(f.Rejected, "attestation: "+err.Error())
			continue
		}
		f.Attestations[a.PredicateType] = a // layers are in order: the newest wins
	}
	return f, nil
}

func read(ctx context.Context, tag name.Tag, r Remote) ([]layer, error) {
	img, err := remote.Image(tag, r.Auth.RemoteOptions(ctx)...)
	if err != nil {
		if notFound(err) {
			return nil, nil
		}
		return nil, r.Auth.Scrub(err)
	}
	return layersOf(img)
}

// verifySimple checks a simple-signing layer's signature annotation against its payload.
func (v *Verifier) verifySimple(l layer) error {
	sig, err := base64.StdEncoding.DecodeString(l.annotations[signatureAnnotation])
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("no signature in the layer's %s annotation", signatureAnnotation)
	}
	if err := v.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(l.content)); err != nil {
		return fmt.Errorf("not signed by %s", v.KeyID)
	}
	return nil
}

func (v *Verifier) checkSignature(l layer, d name.Digest) error {
	if l.mediaType != simpleSigningMediaType {
		return fmt.Errorf("unexpected media type %s", l.mediaType)
	}
	if err := v.verifySimple(l); err != nil {
		return err
	}
	var p payload.Cosign
	if err := json.Unmarshal(l.content, &p); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	if p.Image.DigestStr() != d.DigestStr() {
		return fmt.Errorf("signs %s, not %s", p.Image.DigestStr(), d.DigestStr())
	}
	return nil
}

// openEnvelope verifies a DSSE envelope with the key and returns its payload.
func (v *Verifier) openEnvelope(env []byte) ([]byte, error) {
	if err := sigdsse.WrapVerifier(v.v).VerifySignature(bytes.NewReader(env), nil); err != nil {
		return nil, fmt.Errorf("not signed by %s", v.KeyID)
	}
	return envelopePayload(env)
}

// statementJSON is an in-toto statement as read (v1, or v0.1 as older cosign writes).
type statementJSON struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate json.RawMessage `json:"predicate"`
}

func (v *Verifier) checkAttestation(l layer, d name.Digest) (*Attestation, error) {
	if l.mediaType != dsseMediaType {
		return nil, fmt.Errorf("unexpected media type %s", l.mediaType)
	}
	pt := l.annotations[predicateAnnotation]
	p, err := v.openEnvelope(l.content)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pt, err)
	}
	a, err := CheckStatement(p, pt, d)
	if err != nil {
		return nil, err
	}
	a.Envelope = EnvelopeID(l.content)
	return a, nil
}

// EnvelopeID names a stored envelope (or bundle) in reports and results: the sha256 of its bytes,
// what Attached.Envelopes and Attestation.Envelope hold, whichever way it was signed.
func EnvelopeID(stored []byte) string {
	sum := sha256.Sum256(stored)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckStatement reads a verified in-toto statement (pt: the predicate type it was stored under,
// for errors) and checks that it is about the image d. Envelope is left for the caller.
func CheckStatement(p []byte, pt string, d name.Digest) (*Attestation, error) {
	var st statementJSON
	if err := json.Unmarshal(p, &st); err != nil {
		return nil, fmt.Errorf("%s: not an in-toto statement: %w", pt, err)
	}
	if !strings.HasPrefix(st.Type, "https://in-toto.io/Statement/") {
		return nil, fmt.Errorf("%s: statement type %q", pt, st.Type)
	}
	alg, hexDigest, _ := strings.Cut(d.DigestStr(), ":")
	about := false
	for _, s := range st.Subject {
		if s.Digest[alg] == hexDigest {
			about = true
		}
	}
	if !about {
		return nil, fmt.Errorf("%s: the statement is about another image", st.PredicateType)
	}
	return &Attestation{PredicateType: st.PredicateType, Predicate: st.Predicate}, nil
}

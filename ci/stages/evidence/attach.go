package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Attached is what Attach stored for an image.
type Attached struct {
	Image string // repo@sha256:…
	// Signature is the tag of the signatures (repo:sha256-….sig); Attestations that of the attestations.
	Signature, Attestations string
	// Envelopes are the digests (sha256 of the DSSE envelope) of the attestations, by predicate type.
	Envelopes map[string]string
	// KeyID names the signer: the key's ID, or the certificate's identity (keyless).
	KeyID string
}

// Attacher signs an image's digest and statements and stores them next to it: with a key
// (*Signer), or keyless (the GitOps program, with the CI's OIDC identity).
type Attacher interface {
	Attach(ctx context.Context, image string, statements []Statement, r Remote) (*Attached, error)
}

// Attach signs the image digest and each statement with the key and stores them in cosign's tags
// next to the image. The image must exist at that digest. Signing again what is already stored adds
// nothing.
func (s *Signer) Attach(ctx context.Context, image string, statements []Statement, r Remote) (*Attached, error) {
	d, err := r.Existing(ctx, image)
	if err != nil {
		return nil, err
	}
	out := &Attached{Image: d.String(), Signature: tagFor(d, ".sig").String(), Attestations: tagFor(d, ".att").String(),
		Envelopes: map[string]string{}, KeyID: s.KeyID}

	// The signature: cosign's "simple signing" payload, signed as is.
	pl, err := json.Marshal(payload.Cosign{Image: d})
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: signature payload: %w", d, err)
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(pl))
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: signing: %w", d, err)
	}
	sigLayer := layer{mediaType: simpleSigningMediaType, content: pl,
		annotations: map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)}}
	if err := appendLayers(ctx, tagFor(d, ".sig"), []layer{sigLayer}, r, samePayloadAndKey(s)); err != nil {
		return nil, fmt.Errorf("evidence: %s: storing the signature: %w", d, err)
	}

	// The attestations: DSSE envelopes of in-toto statements, one layer each.
	var atts []layer
	for _, st := range statements {
		env, err := sigdsse.WrapSigner(s.sv, intotoPayloadType).SignMessage(bytes.NewReader(st.JSON))
		if err != nil {
			return nil, fmt.Errorf("evidence: %s: signing the %s attestation: %w", d, st.PredicateType, err)
		}
		out.Envelopes[st.PredicateType] = EnvelopeID(env)
		atts = append(atts, layer{mediaType: dsseMediaType, content: env,
			annotations: map[string]string{signatureAnnotation: "", predicateAnnotation: st.PredicateType}})
	}
	if len(atts) > 0 {
		if err := appendLayers(ctx, tagFor(d, ".att"), atts, r, samePayloadAndKey(s)); err != nil {
			return nil, fmt.Errorf("evidence: %s: storing the attestations: %w", d, err)
		}
	}
	return out, nil
}

type layer struct {
	mediaType   string
	content     []byte
	annotations map[string]string
}

// samePayloadAndKey says whether a stored layer already holds what l holds, signed by s: ECDSA
// signatures differ on every signing, so a rerun would otherwise pile up copies.
func samePayloadAndKey(s *Signer) func(old, l layer) bool {
	v := &Verifier{v: s.sv, KeyID: s.KeyID}
	return func(old, l layer) bool {
		if old.mediaType != l.mediaType || old.annotations[predicateAnnotation] != l.annotations[predicateAnnotation] {
			return false
		}
		if l.mediaType == simpleSigningMediaType {
			return bytes.Equal(old.content, l.content) && v.verifySimple(old) == nil
		}
		a, errA := v.openEnvelope(old.content)
		b, errB := envelopePayload(l.content)
		return errA == nil && errB == nil && bytes.Equal(a, b)
	}
}

// appendLayers adds layers to the image at tag (created empty, OCI media types, as cosign does),
// skipping those already there, and pushes it.
func appendLayers(ctx context.Context, tag name.Tag, add []layer, r Remote, same func(old, l layer) bool) error {
	opts := r.Auth.RemoteOptions(ctx)
	var base v1.Image = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	var existing []layer
	img, err := remote.Image(tag, opts...)
	switch {
	case err == nil:
		base = img
		if existing, err = layersOf(img); err != nil {
			return err
		}
	case !notFound(err):
		return r.Auth.Scrub(err)
	}
	var adds []mutate.Addendum
	for _, l := range add {
		dup := false
		for _, old := range existing {
			if same(old, l) {
				dup = true
				break
			}
		}
		if !dup {
			adds = append(adds, mutate.Addendum{Layer: static.NewLayer(l.content, types.MediaType(l.mediaType)),
				Annotations: l.annotations, MediaType: types.MediaType(l.mediaType)})
		}
	}
	if len(adds) == 0 {
		return nil
	}
	next, err := mutate.Append(base, adds...)
	if err != nil {
		return err
	}
	return r.Auth.Scrub(remote.Write(tag, next, opts...))
}

// layersOf reads every layer of a signature or attestation image with its annotations.
func layersOf(img v1.Image) ([]layer, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	var out []layer
	for _, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, layer{mediaType: string(desc.MediaType), content: buf.Bytes(), annotations: desc.Annotations})
	}
	return out, nil
}

func notFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// envelopePayload is the (unverified) payload of a DSSE envelope.
func envelopePayload(env []byte) ([]byte, error) {
	var e dsse.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, err
	}
	return e.DecodeB64Payload()
}

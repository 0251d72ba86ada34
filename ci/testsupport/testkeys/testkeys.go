// Package testkeys makes signing keys for tests and benchmarks: a P-256 key pair in the PEM formats
// cosign writes, loaded as the evidence stage's signer and verifier. (Where an independent maker of
// keys matters, use cosigncli's GenerateKeyPair.)
package testkeys

import (
	"crypto/elliptic"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"wanderlust.dev/pipeline/ci/stages/evidence"
)

// Pair is a key pair as PEM and as the evidence stage loads it.
type Pair struct {
	Private, Public []byte
	Signer          *evidence.Signer
	Verifier        *evidence.Verifier
}

// New makes a key pair whose private key is encrypted with password (nil: none).
func New(t testing.TB, password []byte) Pair {
	t.Helper()
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{Private: priv, Public: pub}
	if p.Signer, err = evidence.LoadSigner(priv, password); err != nil {
		t.Fatal(err)
	}
	if p.Verifier, err = evidence.LoadVerifier(pub); err != nil {
		t.Fatal(err)
	}
	return p
}

package evidence

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Signer signs image digests and attestations.
type Signer struct {
	sv signature.SignerVerifier
	// KeyID names the key: SHA256 of its public key (DER), as in the report.
	KeyID string
}

// LoadSigner reads a private key in PEM: cosign's encrypted format (`cosign generate-key-pair`,
// "ENCRYPTED SIGSTORE PRIVATE KEY", decrypted with password) or an unencrypted PKCS#8, PKCS#1 or EC
// key. The key and the password never appear in an error.
func LoadSigner(pemKey, password []byte) (*Signer, error) {
	if len(pemKey) == 0 {
		return nil, errors.New("evidence: the signing key is empty")
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemKey, cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		// The library's errors name the PEM type or "decryption failed", never the key.
		return nil, fmt.Errorf("evidence: reading the signing key (is --signing-password right?): %w", err)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("evidence: signing key: %w", err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("evidence: signing key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, KeyID: id}, nil
}

// PublicKeyPEM is the signer's public key, as `cosign verify --key` reads it.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// Verifier checks signatures with a public key.
type Verifier struct {
	v     signature.Verifier
	KeyID string
}

// LoadVerifier reads a PEM public key (cosign.pub).
func LoadVerifier(pemKey []byte) (*Verifier, error) {
	if len(pemKey) == 0 {
		return nil, errors.New("evidence: no public key to verify with (--verify-key)")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return nil, fmt.Errorf("evidence: reading the public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("evidence: public key: %w", err)
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &Verifier{v: v, KeyID: id}, nil
}

// KeyID is "SHA256:<hex>" of the public key's DER encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("evidence: public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + hex.EncodeToString(sum[:])[:16], nil
}

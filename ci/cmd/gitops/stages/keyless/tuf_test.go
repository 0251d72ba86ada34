package keyless_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"wanderlust.dev/pipeline/ci/cmd/gitops/internal/sigstorestack"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/keyless"
	"wanderlust.dev/pipeline/ci/stages/evidence"
)

// tufRepo writes a TUF repository (one ed25519 key for every role, no consistent snapshots) whose
// one target is trusted_root.json, and returns its directory and its root metadata.
func tufRepo(t *testing.T, trustedRoot []byte) (dir string, rootJSON []byte) {
	t.Helper()
	dir = t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.LoadSigner(priv, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(24 * time.Hour)
	root := metadata.Root(expires)
	root.Signed.ConsistentSnapshot = false
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if err := root.Signed.AddKey(key, role); err != nil {
			t.Fatal(err)
		}
	}
	targets := metadata.Targets(expires)
	tf, err := metadata.TargetFile().FromBytes("trusted_root.json", trustedRoot, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	targets.Signed.Targets["trusted_root.json"] = tf
	snapshot, timestamp := metadata.Snapshot(expires), metadata.Timestamp(expires)
	snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(targets.Signed.Version)
	timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(snapshot.Signed.Version)
	for _, m := range []interface {
		Sign(signature.Signer) (*metadata.Signature, error)
	}{root, targets, snapshot, timestamp} {
		if _, err := m.Sign(signer); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(dir, "targets"), 0o755)
	write := func(name string, m interface{ ToBytes(bool) ([]byte, error) }) []byte {
		b, err := m.ToBytes(true)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
		return b
	}
	rootJSON = write("1.root.json", root)
	write("targets.json", targets)
	write("snapshot.json", snapshot)
	write("timestamp.json", timestamp)
	os.WriteFile(filepath.Join(dir, "targets", "trusted_root.json"), trustedRoot, 0o644)
	return dir, rootJSON
}

// Without --trusted-root the trusted root is fetched over TUF and checked from the TUF root the
// client holds, the way sigstore-go fetches Sigstore's public one (PublicTUF): here a local TUF
// repository serving the local Sigstore's root. The checker built on it passes our keyless
// signature; a trusted_root.json swapped on the server after the targets were signed, and a
// repository signed by a key the client's TUF root does not name, are refused.
func TestTrustedRootOverTUF(t *testing.T) {
	s := sigstorestack.Start(t)
	host := registryHost(t, true)
	image := pushImage(t, host, "wanderlust-backend")
	signer, err := keyless.NewSigner(keyless.SignOptions{Services: keyless.Services{FulcioURL: s.FulcioURL, RekorURL: s.RekorURL, TSAURL: s.TSAURL},
		Token: keyless.TokenSource{RequestURL: s.RequestURL, RequestToken: s.RequestToken}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Attach(context.Background(), image, nil, evidence.Remote{}); err != nil {
		t.Fatal(err)
	}
	dir, rootJSON := tufRepo(t, s.TrustedRoot)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	opts := func(root []byte) *tuf.Options {
		return tuf.DefaultOptions().WithRoot(root).WithRepositoryBaseURL(srv.URL).WithCachePath(t.TempDir()).WithDisableConsistentSnapshot()
	}
	tr, err := keyless.TrustedRoot(nil, opts(rootJSON))
	if err != nil {
		t.Fatal(err)
	}
	c, err := keyless.NewChecker(tr, keyless.Identity{Subject: sigstorestack.Identity(sigstorestack.Workflow), Issuer: s.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	if f, err := c.Collect(context.Background(), image, evidence.Remote{}); err != nil || !f.Signed {
		t.Fatalf("checked against the root fetched over TUF: %+v, %v", f, err)
	}

	// Another repository's key: the client's TUF root does not trust it.
	_, otherRoot := tufRepo(t, s.TrustedRoot)
	if _, err := keyless.TrustedRoot(nil, opts(otherRoot)); err == nil {
		t.Error("metadata signed by a key the TUF root does not name was accepted")
	}
	// The target swapped after it was signed for.
	swapped := strings.Replace(string(s.TrustedRoot), s.RekorURL, "http://127.0.0.1:1", 1)
	os.WriteFile(filepath.Join(dir, "targets", "trusted_root.json"), []byte(swapped), 0o644)
	if _, err := keyless.TrustedRoot(nil, opts(rootJSON)); err == nil {
		t.Error("a trusted_root.json that is not the one the targets metadata names was accepted")
	}
}

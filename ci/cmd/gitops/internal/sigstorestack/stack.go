// Package sigstorestack runs a local Sigstore on loopback for the keyless tests, the way Sigstore's
// own scaffolding does: an OIDC issuer that issues GitHub-Actions-shaped tokens (and answers the
// ACTIONS_ID_TOKEN_REQUEST_URL protocol), Fulcio with a file CA trusting that issuer as a
// github-workflow CI provider, a Rekor v2 log (rekor-tiles, POSIX storage), a timestamp authority,
// and the trusted_root.json and signing config that name them. The servers are the projects' own
// binaries, built by hack/e2e/sigstore.sh. There is no CT log: certificates carry no SCT, and the
// trusted root lists none (cosign verify then needs --insecure-ignore-sct).
package sigstorestack

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"github.com/sigstore/rekor-tiles/v2/pkg/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

// Versions names the binaries' cache directory (hack/e2e/sigstore.sh).
const Versions = "fulcio-v1.8.8_rekor-tiles-v2.3.0_tsa-v2.1.3"

// BinDir is where hack/e2e/sigstore.sh puts the servers.
func BinDir() string {
	return fixtures.ToolCache("sigstore", Versions)
}

// Workflow is the job_workflow_ref of the tokens by default: the deploy workflow on main.
const Workflow = "wanderlust-app/wanderlust/.github/workflows/deploy.yml@refs/heads/main"

// Stack is a running local Sigstore.
type Stack struct {
	// Issuer is the OIDC issuer's URL (the certificates' issuer); FulcioURL, RekorURL and TSAURL
	// the services (TSAURL is the timestamp endpoint).
	Issuer, FulcioURL, RekorURL, TSAURL string
	// TrustedRoot is trusted_root.json; TrustedRootPath and SigningConfigPath the files.
	TrustedRoot                        []byte
	TrustedRootPath, SigningConfigPath string
	// RequestURL and RequestToken are GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN.
	RequestURL, RequestToken string
	// CA and CAKey are Fulcio's root (tests mint certificates of chosen validity with them).
	CA    *x509.Certificate
	CAKey crypto.Signer

	oidcKey *ecdsa.PrivateKey
	dir     string
	mu      sync.Mutex
	issued  []string
}

// Issued are the tokens the request endpoint handed out (tests look for them in outputs).
func (s *Stack) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Identity is the certificate subject Fulcio gives a token of this workflow ref.
func Identity(workflowRef string) string { return "https://github.com/" + workflowRef }

// Start runs the stack for the test; without the binaries the test is skipped (fails with
// WANDERLUST_E2E set).
func Start(t testing.TB) *Stack {
	t.Helper()
	bin := BinDir()
	for _, b := range []string{"fulcio", "rekor-server", "timestamp-server"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			if os.Getenv("WANDERLUST_E2E") != "" {
				t.Fatalf("%s is missing in %s: run hack/e2e/sigstore.sh", b, bin)
			}
			t.Skipf("%s is missing in %s (hack/e2e/sigstore.sh builds it)", b, bin)
		}
	}
	s := &Stack{dir: t.TempDir(), RequestToken: "request-" + randHex(8)}
	var err error
	if s.oidcKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	oidc := httptest.NewServer(http.HandlerFunc(s.serveOIDC))
	t.Cleanup(oidc.Close)
	s.Issuer = oidc.URL
	s.RequestURL = oidc.URL + "/token-request?api-version=2.0"

	// Fulcio: a file CA, the local issuer as a GitHub Actions provider.
	s.CA, s.CAKey = selfSignedCA(t, "wanderlust-test-fulcio")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.CA.Raw})
	keyDER, _ := x509.MarshalPKCS8PrivateKey(s.CAKey)
	write(t, s.dir, "ca.pem", caPEM)
	write(t, s.dir, "ca.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	write(t, s.dir, "fulcio.yaml", fulcioConfig(s.Issuer))
	fport, fgrpc, fmetrics := freePort(t), freePort(t), freePort(t)
	s.FulcioURL = fmt.Sprintf("http://127.0.0.1:%d", fport)
	// Loopback only, and a legacy gRPC socket of its own (the default is one abstract socket name
	// for every Fulcio on the machine).
	start(t, s.dir, "fulcio", filepath.Join(bin, "fulcio"), "serve", "--host=127.0.0.1", fmt.Sprintf("--port=%d", fport),
		"--grpc-host=127.0.0.1", fmt.Sprintf("--grpc-port=%d", fgrpc), "--legacy-unix-domain-socket=@wanderlust-fulcio-"+randHex(8), fmt.Sprintf("--metrics-port=%d", fmetrics), "--ca=fileca",
		"--fileca-cert="+filepath.Join(s.dir, "ca.pem"), "--fileca-key="+filepath.Join(s.dir, "ca.key"), "--fileca-key-passwd=unused",
		"--ct-log-url=", "--config-path="+filepath.Join(s.dir, "fulcio.yaml"))

	// Rekor v2: an ECDSA checkpoint key, POSIX storage, origin = the URL's host.
	rekorKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := x509.MarshalPKCS8PrivateKey(rekorKey)
	write(t, s.dir, "rekor.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rk}))
	rport, rgrpc, rmetrics := freePort(t), freePort(t), freePort(t)
	s.RekorURL = fmt.Sprintf("http://127.0.0.1:%d", rport)
	start(t, s.dir, "rekor", filepath.Join(bin, "rekor-server"), "serve", "--http-address=127.0.0.1", fmt.Sprintf("--http-port=%d", rport),
		"--grpc-address=127.0.0.1", fmt.Sprintf("--grpc-port=%d", rgrpc), fmt.Sprintf("--http-metrics-port=%d", rmetrics),
		"--hostname=127.0.0.1", "--storage-dir="+filepath.Join(s.dir, "rekor-log"), "--signer-filepath="+filepath.Join(s.dir, "rekor.key"),
		"--checkpoint-interval=100ms", "--batch-max-age=50ms")

	// The timestamp authority, with its in-memory signer; one at a time on the machine.
	lockTSA(t)
	tport := freePort(t)
	tsaBase := fmt.Sprintf("http://127.0.0.1:%d", tport)
	s.TSAURL = tsaBase + "/api/v1/timestamp"
	start(t, s.dir, "tsa", filepath.Join(bin, "timestamp-server"), "serve", "--host=127.0.0.1", fmt.Sprintf("--port=%d", tport),
		"--timestamp-signer=memory", "--disable-ntp-monitoring")

	wait(t, s.FulcioURL+"/api/v2/configuration")
	wait(t, s.RekorURL+"/healthz")
	chainPEM := wait(t, tsaBase+"/api/v1/timestamp/certchain")

	s.TrustedRoot = trustedRoot(t, s, &rekorKey.PublicKey, chainPEM)
	s.TrustedRootPath = write(t, s.dir, "trusted_root.json", s.TrustedRoot)
	s.SigningConfigPath = write(t, s.dir, "signing_config.json", signingConfig(t, s))
	return s
}

// Claims are a GitHub Actions ID token's claims, as Fulcio's github-workflow provider reads them.
type Claims map[string]any

// GitHubClaims are the claims of a push on main running workflowRef ("owner/repo/path@ref").
func GitHubClaims(workflowRef string) Claims {
	repo := strings.Join(strings.SplitN(workflowRef, "/", 3)[:2], "/")
	workflow, ref, _ := strings.Cut(workflowRef, "@")
	return Claims{"sub": "repo:" + repo + ":ref:" + ref, "job_workflow_ref": workflowRef, "job_workflow_sha": strings.Repeat("a", 40),
		"workflow_ref": workflowRef, "workflow_sha": strings.Repeat("a", 40), "sha": strings.Repeat("b", 40), "ref": ref, "event_name": "push",
		"repository": repo, "repository_id": "1", "repository_owner": strings.Split(repo, "/")[0], "repository_owner_id": "2",
		"repository_visibility": "public", "workflow": filepath.Base(workflow), "run_id": "3", "run_attempt": "1", "runner_environment": "github-hosted"}
}

// Token is an ID token for the audience "sigstore" with these claims, valid 10 minutes.
func (s *Stack) Token(t testing.TB, c Claims) string {
	t.Helper()
	tok, err := s.sign(c, "sigstore")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *Stack) sign(c Claims, aud string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.oidcKey}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	std := jwt.Claims{Issuer: s.Issuer, Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute))}
	return jwt.Signed(signer).Claims(std).Claims(map[string]any(c)).Serialize()
}

// serveOIDC is the issuer: discovery, keys, and GitHub's token request endpoint (a bearer
// RequestToken; the audience from the query; the default workflow's claims).
func (s *Stack) serveOIDC(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(map[string]any{"issuer": s.Issuer, "jwks_uri": s.Issuer + "/keys", "response_types_supported": []string{"id_token"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"ES256"}})
	case "/keys":
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.oidcKey.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	case "/token-request":
		if r.Header.Get("Authorization") != "Bearer "+s.RequestToken {
			http.Error(w, "bad request token", http.StatusUnauthorized)
			return
		}
		tok, err := s.sign(GitHubClaims(Workflow), r.URL.Query().Get("audience"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s.mu.Lock()
		s.issued = append(s.issued, tok)
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{"value": tok})
	default:
		http.NotFound(w, r)
	}
}

// fulcioConfig trusts the issuer as a GitHub Actions provider (the github-workflow part of Fulcio's
// own config/identity/config.yaml).
func fulcioConfig(issuer string) []byte {
	return []byte(`oidc-issuers:
  ` + issuer + `:
    issuer-url: ` + issuer + `
    client-id: sigstore
    type: ci-provider
    ci-provider: github-workflow
ci-issuer-metadata:
  github-workflow:
    default-template-values:
      url: "https://github.com"
      environment: ""
    extension-templates:
      github-workflow-trigger: "event_name"
      github-workflow-sha: "sha"
      github-workflow-name: "workflow"
      github-workflow-repository: "repository"
      github-workflow-ref: "ref"
      build-signer-uri: "{{ .url }}/{{ .job_workflow_ref }}"
      build-signer-digest: "job_workflow_sha"
      runner-environment: "runner_environment"
      source-repository-uri: "{{ .url }}/{{ .repository }}"
      source-repository-digest: "sha"
      source-repository-ref: "ref"
      source-repository-identifier: "repository_id"
      source-repository-owner-uri: "{{ .url }}/{{ .repository_owner }}"
      source-repository-owner-identifier: "repository_owner_id"
      build-config-uri: "{{ .url }}/{{ .workflow_ref }}"
      build-config-digest: "workflow_sha"
      build-trigger: "event_name"
      run-invocation-uri: "{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}"
      source-repository-visibility-at-signing: "repository_visibility"
      deployment-environment: "environment"
    subject-alternative-name-template: "{{ .url }}/{{ .job_workflow_ref }}"
`)
}

// trustedRoot names the stack's Fulcio CA, Rekor log and TSA chain.
func trustedRoot(t testing.TB, s *Stack, rekorKey *ecdsa.PublicKey, tsaChainPEM []byte) []byte {
	t.Helper()
	since := &protocommon.TimeRange{Start: timestamppb.New(time.Now().Add(-time.Hour))}
	der, err := x509.MarshalPKIXPublicKey(rekorKey)
	if err != nil {
		t.Fatal(err)
	}
	_, logID, err := note.KeyHash("127.0.0.1", rekorKey)
	if err != nil {
		t.Fatal(err)
	}
	var tsaCerts []*protocommon.X509Certificate
	for rest := tsaChainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		tsaCerts = append(tsaCerts, &protocommon.X509Certificate{RawBytes: b.Bytes})
	}
	if len(tsaCerts) == 0 {
		t.Fatalf("the TSA's certificate chain is empty: %q", tsaChainPEM)
	}
	tr := &prototrustroot.TrustedRoot{MediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
		Tlogs: []*prototrustroot.TransparencyLogInstance{{BaseUrl: s.RekorURL, HashAlgorithm: protocommon.HashAlgorithm_SHA2_256,
			PublicKey: &protocommon.PublicKey{RawBytes: der, KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256, ValidFor: since},
			LogId:     &protocommon.LogId{KeyId: logID}}},
		CertificateAuthorities: []*prototrustroot.CertificateAuthority{{Subject: &protocommon.DistinguishedName{Organization: "wanderlust-test", CommonName: s.CA.Subject.CommonName},
			Uri: s.FulcioURL, CertChain: &protocommon.X509CertificateChain{Certificates: []*protocommon.X509Certificate{{RawBytes: s.CA.Raw}}}, ValidFor: since}},
		TimestampAuthorities: []*prototrustroot.CertificateAuthority{{Subject: &protocommon.DistinguishedName{Organization: "wanderlust-test", CommonName: "tsa"},
			Uri: s.TSAURL, CertChain: &protocommon.X509CertificateChain{Certificates: tsaCerts}, ValidFor: since}}}
	b, err := protojson.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signingConfig is the signing config v0.2 cosign v3 signs with (--signing-config).
func signingConfig(t testing.TB, s *Stack) []byte {
	t.Helper()
	since := &protocommon.TimeRange{Start: timestamppb.New(time.Now().Add(-time.Hour))}
	sc := &prototrustroot.SigningConfig{MediaType: "application/vnd.dev.sigstore.signingconfig.v0.2+json",
		CaUrls:          []*prototrustroot.Service{{Url: s.FulcioURL, MajorApiVersion: 1, ValidFor: since}},
		RekorTlogUrls:   []*prototrustroot.Service{{Url: s.RekorURL, MajorApiVersion: 2, ValidFor: since}},
		RekorTlogConfig: &prototrustroot.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY},
		TsaUrls:         []*prototrustroot.Service{{Url: s.TSAURL, MajorApiVersion: 1, ValidFor: since}},
		TsaConfig:       &prototrustroot.ServiceConfiguration{Selector: prototrustroot.ServiceSelector_ANY}}
	b, err := protojson.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Certificate mints a code-signing certificate for pub from the stack's CA, as Fulcio would for
// this subject and issuer, valid from notBefore to notAfter.
func (s *Stack) Certificate(t testing.TB, pub crypto.PublicKey, subject, issuer string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	issuerExt, _ := asn1String(issuer)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: []int{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: issuerExt}}}
	u, err := parseURL(subject)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.URIs = append(tmpl.URIs, u)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.CA, pub, s.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func selfSignedCA(t testing.TB, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"wanderlust-test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// lockTSA holds, until the test ends, the lock that lets one local timestamp authority run at a
// time on this machine: timestamp-server v2.1.3 serves its metrics on :2112, which no flag moves,
// so a second stack (another test package run at the same time) would end at start ("bind:
// address already in use"). Called before the server starts, so that its cleanup stops the server
// before the lock is released.
func lockTSA(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "wanderlust-sigstore-tsa.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing the file releases the lock
	deadline := time.Now().Add(10 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("another local Sigstore has held %s for 10 minutes", f.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func start(t testing.TB, dir, name, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
}

// wait polls url until it answers 200 and returns the body.
func wait(t testing.TB, url string) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b
			}
			err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func asn1String(s string) ([]byte, error) { return asn1.Marshal(s) }

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

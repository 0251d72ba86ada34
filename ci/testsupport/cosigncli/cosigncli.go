// Package cosigncli runs the real cosign CLI in tests: the independent verifier of what the
// evidence stage signs. hack/e2e/cosign.sh (run by make test) builds it once from the Go module proxy into
// $XDG_CACHE_HOME (or ~/.cache)/wanderlust/cosign/<Version>/cosign.
package cosigncli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

// Version is the cosign release the tests verify key-signed evidence with (classic .sig/.att tags).
const Version = "v2.6.5"

// V3 is the cosign release of the keyless tests: Sigstore bundles in OCI referrers, its default
// (hack/e2e/sigstore.sh builds it).
const V3 = "v3.1.3"

// Path returns the cosign binary; without it the test is skipped, or fails when WANDERLUST_E2E is
// set (as in make test).
func Path(t testing.TB) string {
	t.Helper()
	return pathOf(t, Version, os.Getenv("WANDERLUST_COSIGN"))
}

func pathOf(t testing.TB, version, p string) string {
	t.Helper()
	if p == "" {
		p = fixtures.ToolCache("cosign", version, "cosign")
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("WANDERLUST_E2E") != "" {
			t.Fatalf("cosign %s is missing at %s: run make e2e-tools", version, p)
		}
		t.Skipf("cosign %s is missing at %s (make e2e-tools builds it)", version, p)
	}
	return p
}

// CLI runs cosign with a HOME of its own and no network beyond what the arguments name.
type CLI struct {
	Bin, Home string
	Env       []string
}

// New returns a CLI for the test.
func New(t testing.TB) *CLI {
	t.Helper()
	return &CLI{Bin: Path(t), Home: t.TempDir()}
}

// NewV3 returns a CLI of cosign V3.
func NewV3(t testing.TB) *CLI {
	t.Helper()
	return &CLI{Bin: pathOf(t, V3, ""), Home: t.TempDir()}
}

// Run runs cosign in dir and returns its combined output.
func (c *CLI) Run(dir string, args ...string) (string, error) {
	cmd := exec.Command(c.Bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + c.Home, "PATH=" + os.Getenv("PATH"), "TUF_ROOT=" + filepath.Join(c.Home, "tuf")}, c.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// KeyPair is a key pair made by `cosign generate-key-pair`: cosign.key (encrypted) and cosign.pub in Dir.
type KeyPair struct {
	Dir             string
	Private, Public []byte
}

// PublicPath is cosign.pub's path, for --key.
func (k KeyPair) PublicPath() string { return filepath.Join(k.Dir, "cosign.pub") }

// GenerateKeyPair makes a key pair protected by password with the real CLI, in a new directory.
func (c *CLI) GenerateKeyPair(t testing.TB, password string) KeyPair {
	t.Helper()
	dir := t.TempDir()
	saved := c.Env
	c.Env = append(append([]string{}, saved...), "COSIGN_PASSWORD="+password)
	out, err := c.Run(dir, "generate-key-pair")
	c.Env = saved
	if err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	k := KeyPair{Dir: dir}
	if k.Private, err = os.ReadFile(filepath.Join(dir, "cosign.key")); err != nil {
		t.Fatal(err)
	}
	if k.Public, err = os.ReadFile(k.PublicPath()); err != nil {
		t.Fatal(err)
	}
	return k
}

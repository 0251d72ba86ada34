package sigstorestack

import (
	"os"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/testsupport/cosigncli"
)

// The build script puts the binaries where the tests look: the same versions in both places.
func TestTheBuildScriptBuildsTheseVersions(t *testing.T) {
	b, err := os.ReadFile("../../../../../hack/e2e/sigstore.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	for _, want := range []string{`dir="$cache/sigstore/` + Versions + `"`, `cosign_dir="$cache/cosign/` + cosigncli.V3 + `"`,
		"fulcio@v1.8.8", "rekor-tiles/v2/cmd/rekor-server/posix@v2.3.0", "timestamp-server@v2.1.3", "cosign/v3/cmd/cosign@" + cosigncli.V3} {
		if !strings.Contains(script, want) {
			t.Errorf("hack/e2e/sigstore.sh lacks %s", want)
		}
	}
}

package main

import (
	"context"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// The release publishes the program's image for both platforms as one tag: the arm64 variant is
// cross-compiled (GOARCH) into an arm64 image holding the program and the CA certificates, run as a
// non-root user; a bad platform is refused before anything is built.
func TestPublishRunnerIsOneMultiPlatformTag(t *testing.T) {
	s := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	useSession(t)
	m := &Wanderlust{Registry: "ghcr.io/acme"}
	if _, err := m.PublishRunner(context.Background(), "v1.2.0", "", []string{"linux/amd64", "windows/amd64"}); err == nil || !strings.Contains(err.Error(), "windows/amd64") {
		t.Fatalf("bad platform: %v", err)
	}
	if len(s.Queries()) != 0 {
		t.Fatalf("queries before the platforms were checked: %q", s.Queries())
	}
	out, err := m.PublishRunner(context.Background(), "v1.2.0", strings.Repeat("c", 40), []string{"linux/amd64", "linux/arm64"})
	if err != nil || !strings.HasPrefix(out, "gitops ghcr.io/acme/wanderlust-gitops:v1.2.0@sha256:") || !strings.Contains(out, "without evidence") {
		t.Fatalf("%q %v", out, err)
	}
	all := s.Expand(s.All())
	for _, want := range [][]string{
		{"publish", `address:"ghcr.io/acme/wanderlust-gitops:v1.2.0"`, "platformVariants:"},
		{"publish", `address:"ghcr.io/acme/wanderlust-gitops:cccccccccccc"`, "platformVariants:"},
		{"container", `platform:"linux/arm64"`},
		{"withEnvVariable", `name:"GOARCH"`, `value:"arm64"`},
		{"withFile", `path:"` + runner.CABundle + `"`},
		{"withUser", `name:"` + runner.User + `"`},
		{"withEntrypoint", `"` + runner.Bin + `"`},
	} {
		if !daggerfake.HasCall(all, want[0], want[1:]...) {
			t.Errorf("plan lacks %s(%s)", want[0], strings.Join(want[1:], ", "))
		}
	}
}

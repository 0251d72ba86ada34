package publish

// No Dagger engine runs here: a stand-in session (daggerfake) records the pipelines and answers
// publish with the digest a registry would return.

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var publishAddress = regexp.MustCompile(`publish\(address:"([^"]+)"\)`)

func TestPublishPinsDigestsAndTagsTheCommit(t *testing.T) {
	session := daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if field == "publish" {
			return publishAddress.FindStringSubmatch(q)[1] + "@" + digest, nil
		}
		return daggerfake.Default(field, q)
	}))
	c := dagger.Connect()
	images := map[string]*dagger.Container{
		"backend":  c.Container().From("docker.io/library/node:20.18.1-alpine3.20"),
		"frontend": c.Container().From("docker.io/nginxinc/nginx-unprivileged:1.27.3-alpine"),
	}
	pub, err := Images(context.Background(), images, Options{
		Registry: "ghcr.io/wanderlust-app", Username: "bot", Password: c.Secret("env://REGISTRY_TOKEN"),
		Version: "1.4.0", SourceCommit: "0123456789abcdef0123456789abcdef01234567",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 2 || pub[0].Name != "backend" || pub[0].Ref != "ghcr.io/wanderlust-app/wanderlust-backend:1.4.0@"+digest ||
		pub[1].Ref != "ghcr.io/wanderlust-app/wanderlust-frontend:1.4.0@"+digest {
		t.Fatalf("published %+v", pub)
	}
	all := session.All()
	for _, ref := range []string{"wanderlust-backend:1.4.0", "wanderlust-backend:0123456789ab", "wanderlust-frontend:1.4.0", "wanderlust-frontend:0123456789ab"} {
		if !daggerfake.HasCall(all, "publish", `address:"ghcr.io/wanderlust-app/`+ref+`"`) {
			t.Errorf("%s not published", ref)
		}
	}
	if !daggerfake.HasCall(all, "withRegistryAuth", `address:"ghcr.io"`, `username:"bot"`, `secret:"fake-id-`) {
		t.Errorf("registry auth is not passed as a secret: %s", all)
	}
}

func TestPublishRejectsBadInputBeforeAnything(t *testing.T) {
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := dagger.Connect()
	images := map[string]*dagger.Container{"backend": c.Container()}
	for _, o := range []Options{
		{Registry: "", Version: "1.0.0"},
		{Registry: "https://ghcr.io/x", Version: "1.0.0"},
		{Registry: "ghcr.io/x", Version: "bad tag"},
		{Registry: "ghcr.io/x", Version: "1.0.0", SourceCommit: "not-a-sha"},
	} {
		if _, err := Images(context.Background(), images, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if n := len(session.Queries()); n != 0 {
		t.Errorf("%d queries for invalid input", n)
	}
}

func TestPublishWithoutDigestIsAnError(t *testing.T) {
	daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if field == "publish" {
			return "ghcr.io/x/wanderlust-backend:1.0.0", nil
		}
		return daggerfake.Default(field, q)
	}))
	c := dagger.Connect()
	_, err := Images(context.Background(), map[string]*dagger.Container{"backend": c.Container()}, Options{Registry: "ghcr.io/x", Version: "1.0.0"})
	if err == nil || !strings.Contains(err.Error(), "without a digest") {
		t.Fatalf("err = %v", err)
	}
}

package deploy

// End to end, on real servers: the loopback Argo CD (argocdharness), a smart-HTTP git remote, an OCI
// registry (go-containerregistry) with the images the test pushes, and an SMTP server. The container
// stages are not part of this package: deploy starts from pushed images.

import (
	"bytes"
	"context"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net"
	"net/http/httptest"
	"net/mail"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
	"wanderlust.dev/pipeline/ci/testsupport/smtpserver"
)

const (
	gitToken = "deploy-git-token-1a2b3c"
	smtpPass = "deploy-smtp-pass-4d5e6f"
)

func TestMain(m *testing.M) { argocdharness.Main(m) }

type world struct {
	h        *argocdharness.Harness
	git      *gitserver.Server
	registry string
	smtp     *smtpserver.Server
}

// setup seeds repository repo with overlays dev and staging (deployed by the auto-synced apps
// <repo>-dev and <repo>-staging, both Healthy on return) and the extra overlays, each deploying
// into namespace <repo>-<overlay>, with no application yet.
func setup(t testing.TB, repo string, extra ...string) *world {
	t.Helper()
	h := argocdharness.Shared(t)
	srv, err := gitserver.Start(filepath.Join(t.TempDir(), "git"), "argocd", gitToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	overlays := map[string]string{"dev": repo + "-dev", "staging": repo + "-staging"}
	for _, o := range extra {
		overlays[o] = repo + "-" + o
	}
	if err := argocdharness.SeedRepo(srv, "../../../../../kubernetes", repo, overlays); err != nil {
		t.Fatal(err)
	}
	if err := h.AddRepository(srv.RepoURL(repo), "argocd", gitToken); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"dev", "staging"} {
		if err := h.Application(repo+"-"+env, srv.RepoURL(repo), env, repo+"-"+env, true); err != nil {
			t.Fatal(err)
		}
	}
	reg := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	mailSrv, err := smtpserver.Start("ci", smtpPass, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mailSrv.Close)
	w := &world{h: h, git: srv, registry: strings.TrimPrefix(reg.URL, "http://") + "/wanderlust-app", smtp: mailSrv}
	// Both environments deployed as seeded.
	seed, _ := srv.Head(repo, "main")
	for _, env := range []string{"dev", "staging"} {
		o := w.argo(t, repo+"-"+env)
		// The first rollout of a namespace may overrun the test overlay's 5 s progress deadline on a
		// loaded machine; it recovers once the pods are Ready.
		o.Revision, o.Timeout, o.DegradedGrace = seed, 4*time.Minute, time.Minute
		if _, err := argocd.Sync(context.Background(), o); err != nil {
			t.Fatalf("initial deployment of %s: %v", env, err)
		}
	}
	return w
}

// push puts an image into the registry and returns its reference.
func (w *world) push(t testing.TB, image, tag string) string {
	t.Helper()
	ref := w.registry + "/" + image + ":" + tag
	img, _ := random.Image(256, 1)
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

func (w *world) argo(t testing.TB, app string) argocd.Options {
	return argocd.Options{Server: w.h.Server, Token: w.h.Token, PlainText: true, App: app,
		Timeout: 2 * time.Minute, DegradedGrace: 3 * time.Second, Log: func(s string) { t.Log(s) }}
}

func (w *world) gitOpts(repo string) git.Options {
	return git.Options{URL: w.git.RepoURL(repo), Auth: git.Auth{Username: "argocd", Token: gitToken}}
}

func (w *world) mail() *notify.Options {
	host, port, _ := net.SplitHostPort(w.smtp.Addr)
	p, _ := strconv.Atoi(port)
	return &notify.Options{Host: host, Port: p, Username: "ci", Password: smtpPass, From: "ci@wanderlust.test",
		To: []string{"team@wanderlust.test"}, RootCAs: w.smtp.RootCAs, TLS: notify.StartTLS}
}

// lastMail returns the last mail's subject and decoded plain-text body.
func (w *world) lastMail(t *testing.T) (subject, body string) {
	t.Helper()
	msgs := w.smtp.Messages()
	if len(msgs) == 0 {
		t.Fatal("no mail sent")
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[len(msgs)-1].Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(p) // multipart decodes quoted-printable itself
	return subject, string(b)
}

func TestDeployToHealthyAndMailTheReport(t *testing.T) {
	w := setup(t, "dep")
	backend, frontend := w.push(t, "wanderlust-backend", "2.0.0"), w.push(t, "wanderlust-frontend", "2.0.0")
	commitTime := time.Now().Add(-time.Minute)
	argo := w.argo(t, "dep-dev")
	rep, err := Run(context.Background(), Options{
		Images: []string{backend, frontend}, PinDigest: true,
		Bump: bump.Options{Git: w.gitOpts("dep"), Env: "dev", SourceCommit: "abcdef0123456789"},
		Argo: &argo, Rollback: true, Notify: w.mail(), SourceCommitTime: commitTime,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := w.git.Head("dep", "main")
	statuses := map[string]report.Stage{}
	for _, s := range rep.Stages {
		statuses[s.Name] = s
	}
	if statuses["verify"].Status != report.Succeeded || statuses["bump"].Output["sha"] != head || statuses["sync"].Output["synced"] != head ||
		statuses["sync"].Output["health"] != "Healthy" || statuses["notify"].Status != report.Succeeded || rep.Result != report.Succeeded {
		t.Fatalf("report:\n%s", rep.Text())
	}
	if rep.DORA.LeadTime < time.Minute || rep.DORA.Failed || rep.DORA.RolledBack {
		t.Errorf("DORA %+v", rep.DORA)
	}
	k, _ := w.git.Show("dep", "main", "kubernetes/overlays/dev/kustomization.yaml")
	if !strings.Contains(k, "newName: "+w.registry+"/wanderlust-backend") || !strings.Contains(k, "digest: sha256:") {
		t.Errorf("manifests not pinned to the registry's digests:\n%s", k)
	}
	subject, body := w.lastMail(t)
	if !strings.HasSuffix(subject, "deployed to dev - 'SUCCESS'") || !strings.Contains(body, "sha="+head) || !strings.Contains(body, "lead time") {
		t.Errorf("mail %q:\n%s", subject, body)
	}
	for _, secret := range []string{gitToken, smtpPass, w.h.Token} {
		if strings.Contains(string(rep.JSON()), secret) || strings.Contains(body, secret) {
			t.Error("a secret is in the report")
		}
	}

	// Promote dev → staging: the exact references dev runs, digests included.
	prep, err := Promote(context.Background(), PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("dep"),
		Argo: w.argo(t, ""), FromApp: "dep-dev", ToApp: "dep-staging", Rollback: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, prep.Text())
	}
	dev, _ := w.git.Show("dep", "main", "kubernetes/overlays/dev/kustomization.yaml")
	staging, _ := w.git.Show("dep", "main", "kubernetes/overlays/staging/kustomization.yaml")
	imagesOf := func(k string) string { return k[strings.Index(k, "images:"):] }
	if imagesOf(dev) != imagesOf(staging) {
		t.Errorf("staging images differ from dev's:\n%s\n---\n%s", imagesOf(dev), imagesOf(staging))
	}
}

func TestFailedRolloutRollsBackAndMailsTheFailure(t *testing.T) {
	w := setup(t, "bad")
	broken := w.push(t, "wanderlust-backend", argocdharness.NeverReady)
	argo := w.argo(t, "bad-dev")
	rep, err := Run(context.Background(), Options{
		Images: []string{broken},
		Bump:   bump.Options{Git: w.gitOpts("bad"), Env: "dev"},
		Argo:   &argo, Rollback: true, Notify: w.mail(),
	}, nil)
	if err == nil {
		t.Fatal("a rollout that never becomes Ready succeeded")
	}
	if rep.Result != report.Failed || !rep.DORA.Failed || !rep.DORA.RolledBack || rep.DORA.TimeToRestore == 0 {
		t.Errorf("report:\n%s", rep.Text())
	}
	k, _ := w.git.Show("bad", "main", "kubernetes/overlays/dev/kustomization.yaml")
	if strings.Contains(k, argocdharness.NeverReady) {
		t.Error("not rolled back")
	}
	subject, body := w.lastMail(t)
	if !strings.HasSuffix(subject, "'FAILURE'") || !strings.Contains(body, "rolled back: true") || !strings.Contains(body, "Degraded") {
		t.Errorf("mail %q:\n%s", subject, body)
	}

	// Promoting from an environment that is not Healthy is refused. (It is Healthy again after the
	// rollback, so break it first: a manual sync of the broken commit, waited for until Degraded.)
	bad, err := bump.Run(context.Background(), bump.Options{Git: w.gitOpts("bad"), Env: "dev",
		Updates: mustUpdate(t, broken)})
	if err != nil {
		t.Fatal(err)
	}
	o := w.argo(t, "bad-dev")
	o.Revision = bad.SHA
	if _, err := argocd.Sync(context.Background(), o); err == nil {
		t.Fatal("the broken revision became Healthy")
	}
	before, _ := w.git.Head("bad", "main")
	_, err = Promote(context.Background(), PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("bad"),
		Argo: w.argo(t, ""), FromApp: "bad-dev", ToApp: "bad-staging"})
	if err == nil || !strings.Contains(err.Error(), "refusing to promote") {
		t.Fatalf("promote from a degraded environment: %v", err)
	}
	if after, _ := w.git.Head("bad", "main"); after != before {
		t.Error("a refused promotion pushed")
	}
}

func mustUpdate(t *testing.T, ref string) []manifest.Update {
	u, err := updateFor(ref)
	if err != nil {
		t.Fatal(err)
	}
	return []manifest.Update{u}
}

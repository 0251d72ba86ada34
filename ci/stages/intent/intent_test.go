package intent

// Against a real git remote (git http-backend over smart HTTP) holding this repository's kubernetes/
// tree; commits are made with bump (our write path) and, for "someone else", with the git CLI.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/render"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

const token = "intent-token-8e7d6c"

const dev = "kubernetes/overlays/dev"

type remote struct {
	srv  *gitserver.Server
	opts git.Options
}

func newRemote(t *testing.T) *remote {
	t.Helper()
	srv, err := gitserver.Start(t.TempDir(), "ci", token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	seed := t.TempDir()
	if err := os.CopyFS(filepath.Join(seed, "kubernetes"), os.DirFS("../../../kubernetes")); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateRepo("gitops", "main", os.DirFS(seed)); err != nil {
		t.Fatal(err)
	}
	return &remote{srv: srv, opts: git.Options{URL: srv.RepoURL("gitops"), Auth: git.Auth{Username: "ci", Token: token}}}
}

// bump commits updates to an environment as author and returns the SHA.
func (r *remote) bump(t *testing.T, env, author string, updates ...string) string {
	t.Helper()
	var us []manifest.Update
	for _, s := range updates {
		u, err := manifest.ParseUpdate(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	o := r.opts
	o.Author = git.Signature{Name: author, Email: strings.ToLower(author) + "@example.test"}
	res, err := bump.Run(context.Background(), bump.Options{Git: o, Env: env, Updates: us})
	if err != nil {
		t.Fatal(err)
	}
	return res.SHA
}

func (r *remote) reader(t *testing.T) *git.Reader {
	t.Helper()
	rd, err := git.Open(context.Background(), r.opts)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

func (r *remote) intent(t *testing.T, sha string) *Intent {
	t.Helper()
	in, err := Of(context.Background(), r.reader(t), sha, dev)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (r *remote) judge(t *testing.T, in *Intent, rev string) Verdict {
	t.Helper()
	v, err := in.Judge(context.Background(), r.reader(t), rev)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOfReadsWhatTheCommitSet(t *testing.T) {
	r := newRemote(t)
	sha := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	in := r.intent(t, sha)
	if len(in.Want) != 1 || in.Want[0].Name != "ghcr.io/wanderlust-app/wanderlust-backend" || in.Want[0].NewTag != "2.0.0" || in.Before[0].NewTag != "1.0.0" {
		t.Fatalf("intent %+v", in)
	}
	if v := r.judge(t, in, sha); !v.Holds || !v.Exact {
		t.Errorf("our own commit: %+v", v)
	}
}

func TestANewerCommitKeepingOurValuesHoldsThem(t *testing.T) {
	r := newRemote(t)
	ours := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	other := r.bump(t, "dev", "Other", "wanderlust-frontend=3.0.0") // same overlay, another image
	v := r.judge(t, r.intent(t, ours), other)
	if !v.Holds || v.Exact || !v.Newer || !strings.Contains(v.By, "Other <other@example.test>") || v.Superseded != "" {
		t.Errorf("verdict %+v", v)
	}
}

func TestARevertOfOurChangeSupersedesIt(t *testing.T) {
	r := newRemote(t)
	ours := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	work := t.TempDir()
	for _, args := range [][]string{{"clone", "-q", r.srv.GitDir("gitops"), work}, {"-C", work, "-c", "user.name=Reverter", "-c", "user.email=rev@example.test", "revert", "--no-edit", "HEAD"},
		{"-C", work, "push", "-q", "origin", "main"}} {
		if err := gitserver.Git("", args...); err != nil {
			t.Fatal(err)
		}
	}
	revert, _ := r.srv.Head("gitops", "main")
	// Ancestry alone would count it: the revert contains our commit.
	if ok, _ := git.Contains(context.Background(), r.opts, revert, ours); !ok {
		t.Fatal("the revert does not contain ours")
	}
	v := r.judge(t, r.intent(t, ours), revert)
	if v.Holds || !v.Newer || !strings.Contains(v.Superseded, revert[:12]) || !strings.Contains(v.Superseded, `"Revert \"deploy(dev)`) ||
		!strings.Contains(v.Superseded, "wanderlust-backend=ghcr.io/wanderlust-app/wanderlust-backend:1.0.0") {
		t.Errorf("verdict %+v", v)
	}
}

func TestAnotherRunsBumpOfTheSameImageSupersedesOurs(t *testing.T) {
	r := newRemote(t)
	ours := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	theirs := r.bump(t, "dev", "Theirs", "wanderlust-backend=2.0.1")
	later := r.bump(t, "dev", "Third", "wanderlust-frontend=9.9.9")
	v := r.judge(t, r.intent(t, ours), later)
	// The culprit is the commit that replaced our value, not the newest one.
	if v.Holds || !strings.Contains(v.Superseded, theirs[:12]) || !strings.Contains(v.Superseded, "Theirs") || !strings.Contains(v.Superseded, ":2.0.1") {
		t.Errorf("verdict %+v", v)
	}
}

func TestAnOlderRevisionIsNeitherOursNorSuperseding(t *testing.T) {
	r := newRemote(t)
	seed, _ := r.srv.Head("gitops", "main")
	ours := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	if v := r.judge(t, r.intent(t, ours), seed); v.Holds || v.Newer || v.Superseded != "" {
		t.Errorf("verdict %+v", v)
	}
}

func TestCurrentIntentOfValuesAlreadyInGit(t *testing.T) {
	r := newRemote(t)
	head := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	rd := r.reader(t)
	tree, err := rd.Tree(context.Background(), head)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := manifest.ParseUpdate("wanderlust-backend=2.0.0")
	in, err := Current(tree, dev, []manifest.Update{u})
	if err != nil || in.SHA != "" || len(in.Want) != 1 || in.Want[0].NewTag != "2.0.0" {
		t.Fatalf("intent %+v, %v", in, err)
	}
	seed := r.bump(t, "dev", "Other", "wanderlust-backend=1.0.0")
	if v := r.judge(t, in, head); !v.Holds {
		t.Errorf("head holds the values: %+v", v)
	}
	if v := r.judge(t, in, seed); v.Holds {
		t.Errorf("a later commit with another value holds them: %+v", v)
	}
}

func TestUndoRestoresOnlyOurFieldsAfterALaterDeployOfAnotherImage(t *testing.T) {
	r := newRemote(t)
	ours := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	r.bump(t, "dev", "Other", "wanderlust-frontend=3.0.0") // same file, another image
	r.bump(t, "staging", "Other", "wanderlust-backend=5.0.0")
	// git revert of the whole file would conflict here; the field-level undo does not.
	res, back, err := Undo(context.Background(), r.opts, r.intent(t, ours), "backend Degraded")
	if err != nil {
		t.Fatal(err)
	}
	head, _ := r.srv.Head("gitops", "main")
	if !res.Pushed || res.SHA != head || back.SHA != head || back.Want[0].NewTag != "1.0.0" {
		t.Fatalf("result %+v, back %+v", res, back)
	}
	k, _ := r.srv.Show("gitops", "main", dev+"/kustomization.yaml")
	if !strings.Contains(k, "wanderlust-backend\n    newTag: \"1.0.0\"") || !strings.Contains(k, "wanderlust-frontend\n    newTag: \"3.0.0\"") {
		t.Errorf("dev overlay after the undo:\n%s", k)
	}
	if s, _ := r.srv.Show("gitops", "main", "kubernetes/overlays/staging/kustomization.yaml"); !strings.Contains(s, `newTag: "5.0.0"`) {
		t.Errorf("staging changed:\n%s", s)
	}
	msg, _ := gitserver.Output(r.srv.GitDir("gitops"), "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "Rolls-Back: "+ours) || !strings.Contains(msg, "backend Degraded") || !strings.Contains(msg, "2.0.0 → ghcr.io/wanderlust-app/wanderlust-backend:1.0.0") {
		t.Errorf("message:\n%s", msg)
	}
	// Once more: already restored, nothing pushed.
	res, _, err = Undo(context.Background(), r.opts, r.intent(t, ours), "again")
	if err != nil || res.Changed {
		t.Errorf("second undo: %+v %v", res, err)
	}
}

func TestUndoRefusesWhenOurFieldChangedSince(t *testing.T) {
	r := newRemote(t)
	ours := r.bump(t, "dev", "Ours", "wanderlust-backend=2.0.0")
	theirs := r.bump(t, "dev", "Theirs", "wanderlust-backend=2.0.1")
	_, _, err := Undo(context.Background(), r.opts, r.intent(t, ours), "")
	var ce *git.ConflictError
	if !errors.As(err, &ce) || ce.Commit != theirs || !strings.Contains(err.Error(), "Theirs") || strings.Contains(err.Error(), "rerun") {
		t.Fatalf("err = %v", err)
	}
	if head, _ := r.srv.Head("gitops", "main"); head != theirs {
		t.Error("a refused undo pushed")
	}
}

// A deployment that added an images entry (the overlay did not list the image yet) is rolled back
// by removing that entry: the kustomization is as before, and the rollback's intent holds exactly
// when the entry is gone.
func TestUndoRemovesAnEntryOurCommitAdded(t *testing.T) {
	r := newRemote(t)
	before, _ := r.srv.Show("gitops", "main", dev+"/kustomization.yaml")
	ours := r.bump(t, "dev", "Ours", "mongo=7.0.15", "wanderlust-backend=2.0.0")
	in := r.intent(t, ours)
	if len(in.Want) != 2 {
		t.Fatalf("intent %+v", in)
	}
	res, back, err := Undo(context.Background(), r.opts, in, "mongo Degraded")
	if err != nil {
		t.Fatal(err)
	}
	after, _ := r.srv.Show("gitops", "main", dev+"/kustomization.yaml")
	if !res.Pushed || after != before {
		t.Fatalf("after the undo:\n%s\nwant:\n%s", after, before)
	}
	if v := r.judge(t, back, res.SHA); !v.Holds || len(back.Absent) != 1 || !strings.Contains(back.Summary(), "mongo=(no entry)") {
		t.Errorf("rollback intent %+v: %+v", back, v)
	}
	if v := r.judge(t, back, ours); v.Holds {
		t.Error("the commit that added the entry holds the rollback's intent")
	}
}

// The blamer decides from what each commit renders (krusty): an object our commit changed is ours;
// one another commit changed in the same sync is theirs, named; checks that fail against a newer
// commit are not ours.
func TestBlameFollowsWhatEachCommitRenders(t *testing.T) {
	r := newRemote(t)
	seed, _ := r.srv.Head("gitops", "main")
	theirs := r.bump(t, "dev", "Theirs", "wanderlust-backend=9.9.9")
	ours := r.bump(t, "dev", "Ours", "wanderlust-frontend=2.0.0")
	bl := r.intent(t, ours).Blamer(func(ctx context.Context) (*git.Reader, error) { return git.Open(ctx, r.opts) })
	backend := render.Resource{Group: "apps", Kind: "Deployment", Namespace: "wanderlust-dev", Name: "backend"}
	frontend := render.Resource{Group: "apps", Kind: "Deployment", Namespace: "wanderlust-dev", Name: "frontend"}
	ctx := context.Background()
	if ok, why := bl.Judge(ctx, Failure{Revision: ours, Previous: seed, Resources: []render.Resource{backend}}); ok || !strings.Contains(why, theirs[:12]) || !strings.Contains(why, "Theirs") {
		t.Errorf("backend failing: ours %v, %s", ok, why)
	}
	if ok, why := bl.Judge(ctx, Failure{Revision: ours, Previous: seed, Resources: []render.Resource{frontend}}); !ok {
		t.Errorf("frontend failing: not ours: %s", why)
	}
	// The same sync carried their change too: a failure naming no object is not ours.
	if ok, _ := bl.Judge(ctx, Failure{Revision: ours, Previous: seed}); ok {
		t.Error("an operation failure of a two-commit sync was blamed on us")
	}
	if ok, _ := bl.Judge(ctx, Failure{Revision: ours, Previous: theirs, Verification: true}); !ok {
		t.Error("failed checks of a sync that carried our change alone are not ours")
	}
	newer := r.bump(t, "staging", "Later", "wanderlust-backend=3.0.0")
	if ok, why := bl.Judge(ctx, Failure{Revision: newer, Previous: theirs, Verification: true}); ok || !strings.Contains(why, "newer commit") {
		t.Errorf("checks against a newer commit: ours %v, %s", ok, why)
	}
	changed, rendered, err := bl.Changed(ctx)
	if err != nil || len(changed) != 1 || changed[0].Name != "frontend" || rendered.ProgressDeadline(changed) != 120 { // kubernetes/base sets 120 s
		t.Errorf("changed %v (deadline %d), %v", changed, rendered.ProgressDeadline(changed), err)
	}
}

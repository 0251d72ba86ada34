package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func mustUpdates(t *testing.T, specs ...string) []Update {
	t.Helper()
	var us []Update
	for _, s := range specs {
		u, err := ParseUpdate(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	return us
}

// TestGolden applies updates to the before/ trees under testdata and compares every changed file with
// after/ byte for byte; files absent from after/ must not change.
func TestGolden(t *testing.T) {
	cases := []struct {
		name, dir, path string
		updates         []string
		changed         []string
	}{
		{
			name: "kustomize overlay: tag drops digest, digest drops tag, short name, comments and quoting kept",
			dir:  "overlay", path: "k8s/overlays/prod",
			updates: []string{"wanderlust-backend=1.2.3", "registry.example.com:5000/team/wanderlust-frontend=" + digestB, "nginx=1.28-alpine"},
			changed: []string{"k8s/overlays/prod/kustomization.yaml"},
		},
		{
			name: "kustomize overlay without images: the entry is added",
			dir:  "addentry", path: "k8s/overlays/dev",
			updates: []string{"wanderlust-backend=2.0.0"},
			changed: []string{"k8s/overlays/dev/kustomization.yaml"},
		},
		{
			name: "kustomize overlay listing another image: the entry is appended in the list's indentation",
			dir:  "addentry", path: "k8s/overlays/qa/kustomization.yaml",
			updates: []string{"wanderlust-backend=3.0"},
			changed: []string{"k8s/overlays/qa/kustomization.yaml"},
		},
		{
			name: "seed layout: plain Deployments, init containers of other images untouched",
			dir:  "seed", path: "kubernetes",
			updates: []string{"wanderlust-backend-beta=v2.2.0", "wanderlust-frontend-beta=v2.2.0@" + digest1},
			changed: []string{"kubernetes/backend.yaml", "kubernetes/frontend.yaml"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := os.DirFS(filepath.Join("testdata", c.dir, "before"))
			res, err := Apply(before, Options{Path: c.path, Updates: mustUpdates(t, c.updates...)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Files) != len(c.changed) {
				t.Errorf("changed files = %v, want %v", keys(res.Files), c.changed)
			}
			for _, p := range c.changed {
				want, err := os.ReadFile(filepath.Join("testdata", c.dir, "after", p))
				if err != nil {
					t.Fatal(err)
				}
				if got := string(res.Files[p]); got != string(want) {
					t.Errorf("%s:\n--- got\n%s\n--- want\n%s", p, got, want)
				}
			}
			// Applying the same updates to the result changes nothing.
			after := fstest.MapFS{}
			_ = fs.WalkDir(before, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					b, _ := fs.ReadFile(before, p)
					if nb, ok := res.Files[p]; ok {
						b = nb
					}
					after[p] = &fstest.MapFile{Data: b}
				}
				return err
			})
			again, err := Apply(after, Options{Path: c.path, Updates: mustUpdates(t, c.updates...)})
			if err != nil {
				t.Fatal(err)
			}
			if again.Changed() || again.Summary() != "unchanged" {
				t.Errorf("second apply changed %v: %s", keys(again.Files), again.Summary())
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestSummaryAndEdits(t *testing.T) {
	res, err := Apply(os.DirFS("testdata/overlay/before"), Options{
		Path:    "k8s/overlays/prod",
		Updates: mustUpdates(t, "wanderlust-backend=1.2.3", "nginx=1.27-alpine"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "wanderlust-backend: 1.0.0@sha256:aaaaaaaaaaaa → 1.2.3 (k8s/overlays/prod/kustomization.yaml)"
	if got := res.Summary(); got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	if len(res.Edits) != 2 {
		t.Fatalf("edits = %+v, want 2 (one changed, one already at its value)", res.Edits)
	}
	for _, e := range res.Edits {
		if e.Image == "nginx" && e.Changed() {
			t.Errorf("nginx edit should be unchanged: %+v", e)
		}
		if e.Image == "wanderlust-backend" && (e.From != "1.0.0@"+digestA || e.To != "1.2.3") {
			t.Errorf("backend edit = %+v", e)
		}
	}
}

// TestRepositoryManifests bumps this repository's own kubernetes/ overlays.
func TestRepositoryManifests(t *testing.T) {
	repo := os.DirFS("../../..")
	for _, env := range []string{"dev", "staging", "prod"} {
		res, err := Apply(repo, Options{Path: EnvPath(env), Updates: mustUpdates(t, "wanderlust-backend=9.9.9", "wanderlust-frontend=9.9.8@"+digest1)})
		if err != nil {
			t.Fatal(err)
		}
		k := EnvPath(env) + "/kustomization.yaml"
		before, _ := fs.ReadFile(repo, k)
		got := string(res.Files[k])
		if len(res.Files) != 1 || !strings.Contains(got, `newTag: "9.9.9"`) || !strings.Contains(got, "digest: "+digest1) {
			t.Errorf("%s: got\n%s", env, got)
		}
		// Two lines replaced (the tags: 2 out, 2 in) and one added (the digest).
		if d := lineDiff(string(before), got); d != 5 {
			t.Errorf("%s: %d lines differ, want 5", env, d)
		}
	}
}

// lineDiff counts lines of b that are not lines of a, plus lines of a missing from b.
func lineDiff(a, b string) int {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	n := 0
	for l, k := range cb {
		if k > ca[l] {
			n += k - ca[l]
		}
	}
	for l, k := range ca {
		if k > cb[l] {
			n += k - cb[l]
		}
	}
	return n
}

func TestErrors(t *testing.T) {
	overlay := os.DirFS("testdata/overlay/before")
	seed := os.DirFS("testdata/seed/before")
	cases := []struct {
		name    string
		fsys    fs.FS
		path    string
		updates []Update
		want    []string
	}{
		{"image nowhere names image and searched paths", seed, "kubernetes",
			[]Update{{Name: "wanderlust-worker", Tag: "1"}},
			[]string{`"wanderlust-worker"`, "kubernetes/backend.yaml", "kubernetes/frontend.yaml", "kubernetes/mongodb.yaml"}},
		{"image nowhere in a kustomization's tree", overlay, "k8s/overlays/prod",
			[]Update{{Name: "wanderlust-worker", Tag: "1"}},
			[]string{`"wanderlust-worker"`, "k8s/overlays/prod/kustomization.yaml", "k8s/base/app.yaml"}},
		{"path leaves the repository", seed, "../outside", []Update{{Name: "a", Tag: "1"}}, []string{"leaves the repository"}},
		{"path hidden after a clean", seed, "kubernetes/../../x", []Update{{Name: "a", Tag: "1"}}, []string{"leaves the repository"}},
		{"absolute path", seed, "/etc", []Update{{Name: "a", Tag: "1"}}, []string{"relative"}},
		{"missing path", seed, "nope", []Update{{Name: "a", Tag: "1"}}, []string{`"nope"`}},
		{"bad tag", seed, "kubernetes", []Update{{Name: "wanderlust-backend-beta", Tag: "-bad"}}, []string{"tag"}},
		{"tag too long", seed, "kubernetes", []Update{{Name: "wanderlust-backend-beta", Tag: strings.Repeat("a", 129)}}, []string{"tag"}},
		{"bad digest", seed, "kubernetes", []Update{{Name: "wanderlust-backend-beta", Digest: "sha256:abc"}}, []string{"digest"}},
		{"bad repository", seed, "kubernetes", []Update{{Name: "Upper/Case", Tag: "1"}}, []string{"repository"}},
		{"no tag nor digest", seed, "kubernetes", []Update{{Name: "wanderlust-backend-beta"}}, []string{"tag or a digest"}},
		{"same image twice", seed, "kubernetes", []Update{{Name: "a", Tag: "1"}, {Name: "a", Tag: "2"}}, []string{"twice"}},
		{"no updates", seed, "kubernetes", nil, []string{"no image updates"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Apply(c.fsys, Options{Path: c.path, Updates: c.updates})
			if err == nil {
				t.Fatalf("no error; result %+v", res)
			}
			if res != nil {
				t.Errorf("result returned with error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	_, err := Apply(seed, Options{Path: "kubernetes", Updates: []Update{{Name: "nowhere", Tag: "1"}}})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("not-found error does not wrap ErrNotFound: %v", err)
	}
}

func TestAmbiguousShortName(t *testing.T) {
	fsys := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("resources:\n- a.yaml\n")},
		"k/a.yaml":             {Data: []byte("kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: one.example/x/api:1\n  - name: b\n    image: two.example/y/api:1\n")},
	}
	_, err := Apply(fsys, Options{Path: "k", Updates: []Update{{Name: "api", Tag: "2"}}})
	if err == nil || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), "one.example/x/api") {
		t.Fatalf("err = %v, want an ambiguity error naming both repositories", err)
	}
	res, err := Apply(fsys, Options{Path: "k", Updates: []Update{{Name: "two.example/y/api", Tag: "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Files["k/kustomization.yaml"]); got != "resources:\n- a.yaml\nimages:\n  - name: two.example/y/api\n    newTag: \"2\"\n" {
		t.Errorf("got %q", got)
	}
}

func TestWorkloadKinds(t *testing.T) {
	doc := `apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers:
            - name: init
              image: ghcr.io/acme/api:1
          containers:
            - name: run
              image: ghcr.io/acme/api:1@` + digestA + `
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-a-workload
data:
  image: ghcr.io/acme/api:1
`
	fsys := fstest.MapFS{"m/all.yaml": {Data: []byte(doc)}}
	res, err := Apply(fsys, Options{Path: "m/all.yaml", Updates: []Update{{Name: "ghcr.io/acme/api", Tag: "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(strings.Replace(doc, "image: ghcr.io/acme/api:1\n          containers", "image: ghcr.io/acme/api:2\n          containers", 1),
		"image: ghcr.io/acme/api:1@"+digestA, "image: ghcr.io/acme/api:2", 1)
	if got := string(res.Files["m/all.yaml"]); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if len(res.Edits) != 2 {
		t.Errorf("edits = %d, want 2 (init container and container; ConfigMap ignored)", len(res.Edits))
	}
}

func TestParseUpdate(t *testing.T) {
	for in, want := range map[string]Update{
		"backend=v1.2.3":                     {Name: "backend", Tag: "v1.2.3"},
		"ghcr.io/a/b=" + digestA:             {Name: "ghcr.io/a/b", Digest: digestA},
		"localhost:5000/b=v1@" + digestA:     {Name: "localhost:5000/b", Tag: "v1", Digest: digestA},
		" backend = 1.0 ":                    {Name: "backend", Tag: "1.0"},
		"registry:5000/team/api=_underscore": {Name: "registry:5000/team/api", Tag: "_underscore"},
	} {
		got, err := ParseUpdate(in)
		if err != nil || got != want {
			t.Errorf("ParseUpdate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"backend", "=v1", "backend=", "backend=v1@sha256:xyz", "backend=.dot", "backend=a b", "backend=sha256:" + strings.Repeat("A", 64)} {
		if _, err := ParseUpdate(bad); err == nil {
			t.Errorf("ParseUpdate(%q) accepted", bad)
		}
	}
}

func TestQuotingOfNumericLookingTags(t *testing.T) {
	fsys := fstest.MapFS{"k/kustomization.yaml": {Data: []byte("images:\n- name: api\n  newTag: v1 # plain\n")}}
	res, err := Apply(fsys, Options{Path: "k", Updates: []Update{{Name: "api", Tag: "1.10"}}})
	if err != nil {
		t.Fatal(err)
	}
	// 1.10 written plain would read back as the float 1.1: it must be quoted.
	if got := string(res.Files["k/kustomization.yaml"]); got != "images:\n- name: api\n  newTag: \"1.10\" # plain\n" {
		t.Errorf("got %q", got)
	}
}

// An Argo Rollout with its own pod template is edited like a Deployment, and kustomize renders the
// edit exactly (its images transformer reaches a Rollout's spec.template too).
func TestRolloutTemplateIsEdited(t *testing.T) {
	rollout := `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: api
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}]
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: ghcr.io/acme/api:1.0.0
`
	fsys := fstest.MapFS{"k/kustomization.yaml": {Data: []byte("resources: [r.yaml]\n")}, "k/r.yaml": {Data: []byte(rollout)}}
	res, err := Apply(fsys, Options{Path: "k/r.yaml", Updates: []Update{{Name: "ghcr.io/acme/api", Tag: "2.0.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(res.Files["k/r.yaml"]), strings.Replace(rollout, "api:1.0.0", "api:2.0.0", 1); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Through the kustomization's images: entries, as bump edits an overlay.
	fsys["k/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources: [r.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n")}
	res, err = Apply(fsys, Options{Path: "k", Updates: []Update{{Name: "ghcr.io/acme/api", Tag: "3.0.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	after := fstest.MapFS{"k/r.yaml": fsys["k/r.yaml"], "k/kustomization.yaml": {Data: res.Files["k/kustomization.yaml"]}}
	docs, err := renderTree(after, "k")
	if err != nil {
		t.Fatal(err)
	}
	if imgs, _ := images(t, docs); imgs["Rollout/api containers[0]"] != "ghcr.io/acme/api:3.0.0" {
		t.Errorf("kustomize renders %v", imgs)
	}
}

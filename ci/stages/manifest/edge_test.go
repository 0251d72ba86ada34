package manifest

// Files real teams have, each of which broke the edit before (issue 9's table). The oracle is
// kustomize's own renderer (krusty) wherever a render is involved.

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: ghcr.io/acme/api:1.0.0\n"

// render builds dir of the files with krusty and returns the YAML it renders.
func render(t *testing.T, files fstest.MapFS, dir string) (string, error) {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	for p, f := range files {
		if err := fs.WriteFile("/"+p, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/"+dir)
	if err != nil {
		return "", err
	}
	out, err := m.AsYaml()
	return string(out), err
}

// applyTo applies updates to dir and returns the files with the edit written, or the error.
func applyTo(t *testing.T, files fstest.MapFS, dir string, updates ...string) (fstest.MapFS, *Result, error) {
	t.Helper()
	res, err := Apply(files, Options{Path: dir, Updates: mustUpdates(t, updates...)})
	if err != nil {
		return nil, nil, err
	}
	out := fstest.MapFS{}
	for p, f := range files {
		out[p] = f
	}
	for p, b := range res.Files {
		out[p] = &fstest.MapFile{Data: b}
	}
	return out, res, nil
}

func TestYAML11BooleanTagsAreQuoted(t *testing.T) {
	for _, tag := range []string{"yes", "no", "on", "off", "y", "n", "Y", "NO", "True", "Off"} {
		files := fstest.MapFS{
			"k/kustomization.yaml": {Data: []byte("resources: [d.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n")},
			"k/d.yaml":             {Data: []byte(deployment)},
		}
		after, _, err := applyTo(t, files, "k", "api="+tag)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		if got := string(after["k/kustomization.yaml"].Data); !strings.Contains(got, `newTag: "`+tag+`"`) {
			t.Errorf("tag %s written as:\n%s", tag, got)
		}
		out, err := render(t, after, "k")
		if err != nil || !strings.Contains(out, "image: ghcr.io/acme/api:"+tag+"\n") {
			t.Errorf("tag %s: kustomize renders %v:\n%s", tag, err, out)
		}
	}
}

func TestAmbiguousShortNameInKustomizationEntriesAndDeployments(t *testing.T) {
	k := fstest.MapFS{"k/kustomization.yaml": {Data: []byte("images:\n- name: one.example/x/api\n  newTag: \"1\"\n- name: two.example/y/api\n  newTag: \"1\"\n")}}
	if _, err := Apply(k, Options{Path: "k", Updates: mustUpdates(t, "api=2")}); err == nil || !strings.Contains(err.Error(), "ambiguous") ||
		!strings.Contains(err.Error(), "one.example/x/api") || !strings.Contains(err.Error(), "two.example/y/api") {
		t.Errorf("kustomization entries: err = %v", err)
	}
	two := strings.Replace(deployment, "ghcr.io/acme/api", "two.example/y/api", 1)
	d := fstest.MapFS{
		"plain/a.yaml": {Data: []byte(strings.Replace(deployment, "ghcr.io/acme/api", "one.example/x/api", 1))},
		"plain/b.yaml": {Data: []byte(strings.Replace(two, "name: api\n", "name: api2\n", 1))},
	}
	if _, err := Apply(d, Options{Path: "plain", Updates: mustUpdates(t, "api=2")}); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("two Deployments: err = %v", err)
	}
}

func TestUTF8ByteOrderMarkWithTheValueOnLineOne(t *testing.T) {
	pod := "\xef\xbb\xbf{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: app, image: \"app:1\"}]}}\n"
	res, err := Apply(fstest.MapFS{"p.yaml": {Data: []byte(pod)}}, Options{Path: "p.yaml", Updates: mustUpdates(t, "app=v2")})
	if err != nil {
		t.Fatal(err)
	}
	want := "\xef\xbb\xbf{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: app, image: \"app:v2\"}]}}\n"
	if got := string(res.Files["p.yaml"]); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestCRLFFilesGetCRLFAddedLines(t *testing.T) {
	files := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("resources:\r\n- d.yaml\r\nimages:\r\n- name: ghcr.io/acme/api\r\n  newTag: 1.0.0\r\n")},
		"k/d.yaml":             {Data: []byte(deployment)},
	}
	after, _, err := applyTo(t, files, "k", "api=1.0.0@"+digestA)
	if err != nil {
		t.Fatal(err)
	}
	got := string(after["k/kustomization.yaml"].Data)
	if want := "resources:\r\n- d.yaml\r\nimages:\r\n- name: ghcr.io/acme/api\r\n  newTag: 1.0.0\r\n  digest: " + digestA + "\r\n"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// A new images: list, too.
	files["k/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources:\r\n- d.yaml\r\n")}
	after, _, err = applyTo(t, files, "k", "api=2")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(after["k/kustomization.yaml"].Data); strings.Count(got, "\n") != strings.Count(got, "\r\n") {
		t.Errorf("mixed line endings: %q", got)
	}
}

func TestDuplicateKeyIsRefused(t *testing.T) {
	files := fstest.MapFS{"k/kustomization.yaml": {Data: []byte("images:\n- name: ghcr.io/acme/api\n  newTag: v1\n  newTag: v0\n")}}
	_, err := Apply(files, Options{Path: "k", Updates: mustUpdates(t, "api=v2")})
	if err == nil || !strings.Contains(err.Error(), "duplicate key \"newTag\"") || !strings.Contains(err.Error(), "k/kustomization.yaml:4") {
		t.Fatalf("err = %v", err)
	}
}

func TestTwoKustomizationFilesAreRefused(t *testing.T) {
	files := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("images:\n- name: ghcr.io/acme/api\n  newTag: v1\n")},
		"k/kustomization.yml":  {Data: []byte("images:\n- name: ghcr.io/acme/api\n  newTag: v1\n")},
	}
	_, err := Apply(files, Options{Path: "k", Updates: mustUpdates(t, "api=v2")})
	if err == nil || !strings.Contains(err.Error(), "multiple kustomization files") {
		t.Fatalf("err = %v", err)
	}
	if _, kerr := render(t, files, "k"); kerr == nil || !strings.Contains(kerr.Error(), "ultiple kustomization") {
		t.Errorf("kustomize itself: %v", kerr)
	}
}

func TestFlowStyleImagesAreEditedInPlace(t *testing.T) {
	files := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("resources: [d.yaml, e.yaml]\nimages: [{name: ghcr.io/acme/api, newTag: 1.0.0, digest: " + digestA + "}]\n")},
		"k/d.yaml":             {Data: []byte(deployment)},
		"k/e.yaml":             {Data: []byte(strings.NewReplacer("ghcr.io/acme/api", "ghcr.io/acme/web", "name: api", "name: web", "app: api", "app: web").Replace(deployment))},
	}
	after, _, err := applyTo(t, files, "k", "api=2.0.0", "web=3.0.0@"+digestB)
	if err != nil {
		t.Fatal(err)
	}
	want := "resources: [d.yaml, e.yaml]\nimages: [{name: ghcr.io/acme/api, newTag: 2.0.0}, {name: ghcr.io/acme/web, newTag: 3.0.0, digest: " + digestB + "}]\n"
	if got := string(after["k/kustomization.yaml"].Data); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	out, err := render(t, after, "k")
	if err != nil || !strings.Contains(out, "image: ghcr.io/acme/api:2.0.0\n") || !strings.Contains(out, "image: ghcr.io/acme/web:3.0.0@"+digestB) {
		t.Errorf("render %v:\n%s", err, out)
	}
	// Adding a key to a flow entry.
	after, _, err = applyTo(t, after, "k", "api=2.0.0@"+digestA)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(after["k/kustomization.yaml"].Data); !strings.Contains(got, "{name: ghcr.io/acme/api, newTag: 2.0.0, digest: "+digestA+"}") {
		t.Errorf("got %q", got)
	}
}

func TestImageMatchedByItsNewName(t *testing.T) {
	files := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("resources: [d.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newName: registry.local:5000/team/backend\n  newTag: 1.0.0\n")},
		"k/d.yaml":             {Data: []byte(deployment)},
	}
	after, _, err := applyTo(t, files, "k", "registry.local:5000/team/backend=2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := render(t, after, "k"); err != nil || !strings.Contains(out, "image: registry.local:5000/team/backend:2.0.0\n") {
		t.Errorf("render %v:\n%s", err, out)
	}
	if _, _, err := applyTo(t, files, "k", "backend=2.0.1"); err != nil {
		t.Errorf("by the last element of newName: %v", err)
	}
}

func TestAnchorsAndAliasesSayWhereToEdit(t *testing.T) {
	for name, k := range map[string]string{
		"aliased entry": "x-api: &api\n  name: ghcr.io/acme/api\n  newTag: 1.0.0\nimages:\n- *api\n",
		"aliased tag":   "x-tag: &tag 1.0.0\nimages:\n- name: ghcr.io/acme/api\n  newTag: *tag\n",
		"merged entry":  "x-api: &api\n  newTag: 1.0.0\nimages:\n- name: ghcr.io/acme/api\n  <<: *api\n",
		"aliased list":  "x-images: &imgs\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\nimages: *imgs\n",
	} {
		files := fstest.MapFS{"k/kustomization.yaml": {Data: []byte(k)}}
		_, err := Apply(files, Options{Path: "k", Updates: mustUpdates(t, "api=2.0.0")})
		if err == nil || !strings.Contains(err.Error(), "is defined through an anchor/alias at line") && !strings.Contains(err.Error(), "merges an anchor") ||
			!strings.Contains(err.Error(), "edit it there") || !strings.Contains(err.Error(), "k/kustomization.yaml:") || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	pod := "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: &img ghcr.io/acme/api:1\n  - name: b\n    image: *img\n"
	if _, err := Apply(fstest.MapFS{"p.yaml": {Data: []byte(pod)}}, Options{Path: "p.yaml", Updates: mustUpdates(t, "api=2")}); err == nil ||
		!strings.Contains(err.Error(), "anchor/alias at line 6") {
		t.Errorf("aliased image: err = %v", err)
	}
}

// Found by FuzzKustomizationEdit: a kustomization without a final line break gets the new images:
// list on a line of its own, and no byte of it changes.
func TestNoFinalLineBreak(t *testing.T) {
	for _, nl := range []string{"\n", "\r\n"} {
		before := "resources:" + nl + "- d.yaml"
		files := fstest.MapFS{"k/kustomization.yaml": {Data: []byte(before)}, "k/d.yaml": {Data: []byte(deployment)}}
		after, _, err := applyTo(t, files, "k", "api=0")
		if err != nil {
			t.Fatal(err)
		}
		want := before + nl + "images:" + nl + "  - name: ghcr.io/acme/api" + nl + "    newTag: \"0\"" + nl
		if got := string(after["k/kustomization.yaml"].Data); got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
		if out, err := render(t, after, "k"); err != nil || !strings.Contains(out, "image: ghcr.io/acme/api:0\n") {
			t.Errorf("render %v:\n%s", err, out)
		}
	}
}

// Found by FuzzWorkloadEdit: a YAML document that is a list (or a scalar) made kyaml panic when asked
// for its kind; aliases to their own ancestors must not send the edit into a loop either.
func TestListsAndSelfAliasesAreNoWorkloads(t *testing.T) {
	for _, in := range []string{"&img\n- e:\n    e: *img\n", "&a [*a]\n", "a: &a\n  b: *a\n", "- 1\n- 2\n", "just a scalar\n",
		"kind: Pod\nmetadata: &m\n  name: p\n  labels: {self: *m}\nspec:\n  containers: [{name: a, image: ghcr.io/acme/api:1}]\n"} {
		files := fstest.MapFS{"k/w.yaml": {Data: []byte(in)}}
		res, err := Apply(files, Options{Path: "k/w.yaml", Updates: mustUpdates(t, "api=2")})
		if strings.Contains(in, "kind: Pod") {
			if err != nil || !strings.Contains(string(res.Files["k/w.yaml"]), "ghcr.io/acme/api:2") {
				t.Errorf("%q: %v", in, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrNotFound) && !strings.Contains(err.Error(), "k/w.yaml") {
			t.Errorf("%q: err = %v", in, err)
		}
	}
}

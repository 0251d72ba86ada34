package manifest

// Property-based tests. The oracle is kustomize's own renderer (krusty) and a YAML parser, never this
// package: for any kustomization or workload file that krusty renders and any valid update,
//  1. after the edit krusty still renders, the rendered output differs from before only in the image
//     references of the changed containers (field by field), and re-applying the update changes nothing;
//  2. every line outside the edited values (and the lines an edit adds) is unchanged, byte for byte,
//     line endings included;
//  3. an input the edit refuses yields an error that names the file, and no result.
// `make fuzz FUZZTIME=10m` runs them; `make test` replays the seeds and testdata/fuzz.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// fuzzTree is the fixed part of the tree: this repository's kubernetes/ and, beside the fuzzed
// kustomization (in kubernetes/overlays/fz), two Deployments and the dev overlay's patch.
func fuzzTree(t testing.TB) fstest.MapFS {
	t.Helper()
	tree := fstest.MapFS{}
	err := filepath.WalkDir("../../../kubernetes", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel("../../..", p)
		tree[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	web := strings.NewReplacer("ghcr.io/acme/api:1.0.0", "registry.local:5000/team/web:2.1", "name: api", "name: web", "app: api", "app: web",
		"      containers:\n", "      initContainers:\n      - name: migrate\n        image: registry.local:5000/team/web:2.1\n      containers:\n").Replace(deployment)
	tree["kubernetes/overlays/fz/d.yaml"] = &fstest.MapFile{Data: []byte(deployment)}
	tree["kubernetes/overlays/fz/e.yaml"] = &fstest.MapFile{Data: []byte(web)}
	tree["kubernetes/overlays/fz/resources.yaml"] = tree["kubernetes/overlays/dev/resources.yaml"]
	return tree
}

// renderTree renders dir of tree with krusty; it returns the rendered resources as YAML documents.
func renderTree(tree fstest.MapFS, dir string) ([]*kyaml.RNode, error) {
	fs := filesys.MakeFsInMemory()
	for p, f := range tree {
		if err := fs.WriteFile("/"+p, f.Data); err != nil {
			return nil, err
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/"+dir)
	if err != nil {
		return nil, err
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, err
	}
	return kio.FromBytes(out) // one node per resource
}

// images lists the container images of rendered resources by "kind/name containers[i]" and clears
// them, so that what remains can be compared as a whole.
func images(t testing.TB, docs []*kyaml.RNode) (map[string]string, string) {
	t.Helper()
	found := map[string]string{}
	var rest []string
	for _, d := range docs {
		d = d.Copy()
		for _, specPath := range [][]string{{"spec", "template", "spec"}, {"spec"}, {"spec", "jobTemplate", "spec", "template", "spec"}} {
			spec, err := d.Pipe(kyaml.Lookup(specPath...))
			if err != nil || spec == nil {
				continue
			}
			for _, list := range []string{"initContainers", "containers"} {
				seq, err := spec.Pipe(kyaml.Lookup(list))
				if err != nil || seq == nil || seq.YNode().Kind != kyaml.SequenceNode {
					continue
				}
				for i, c := range seq.Content() {
					cn := kyaml.NewRNode(c)
					if f := cn.Field("image"); f != nil {
						found[fmt.Sprintf("%s/%s %s[%d]", d.GetKind(), d.GetName(), list, i)] = f.Value.YNode().Value
						f.Value.YNode().Value, f.Value.YNode().Style = "<image>", 0 // the quoting of the value is the edit's
					}
				}
			}
		}
		s, err := d.String()
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, s)
	}
	return found, strings.Join(rest, "---\n")
}

// splitRef splits "repo[:tag][@digest]" (the repository may hold a registry port).
func splitRef(ref string) (repo, tag, digest string) {
	repo, digest, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// editedLine matches the lines an image edit may change or add.
var editedLine = regexp.MustCompile(`^\s*(- )?(images|name|newName|newTag|digest|image)\s*:|^\s*-?\s*\{?\s*name\s*:|images\s*:\s*\[|\{\s*name\s*:`)

// checkBytes verifies property 2: the lines that differ (by a longest common subsequence of lines)
// are all lines an image edit may touch, and added lines keep the file's line ending.
func checkBytes(t testing.TB, file string, before, after []byte) {
	t.Helper()
	// An edit that adds lines at the end of a file without a final line break first ends its last
	// line: that inserts bytes and changes none, so compare with the break in place.
	if len(before) > 0 && !strings.HasSuffix(string(before), "\n") {
		for _, nl := range []string{"\r\n", "\n"} {
			if strings.HasPrefix(string(after), string(before)+nl) {
				before = append(append([]byte(nil), before...), nl...)
				break
			}
		}
	}
	a, b := strings.SplitAfter(string(before), "\n"), strings.SplitAfter(string(after), "\n")
	if len(a) > 400 || len(b) > 400 {
		return // too large for the quadratic diff; the render check still holds
	}
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	crlf := strings.Contains(string(before), "\r\n")
	check := func(line, what string) {
		if !editedLine.MatchString(strings.TrimPrefix(line, "\xef\xbb\xbf")) {
			t.Fatalf("%s: %s line %q is not an image field\nbefore:\n%q\nafter:\n%q", file, what, line, before, after)
		}
	}
	for i, j := 0, 0; i < len(a) || j < len(b); {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			check(b[j], "added")
			if crlf && strings.HasSuffix(b[j], "\n") && !strings.HasSuffix(b[j], "\r\n") {
				t.Fatalf("%s: added line %q ends in LF in a CRLF file", file, b[j])
			}
			j++
		default:
			check(a[i], "removed")
			i++
		}
	}
}

// recursiveAlias reports whether a YAML file holds an alias to one of its own ancestors. kustomize's
// renderer overflows its stack on those (a fatal error no test can recover from): such inputs are no
// oracle, and our edit is checked on them by TestListsAndSelfAliasesAreNoWorkloads.
func recursiveAlias(data []byte) bool {
	dec := kyaml.NewDecoder(strings.NewReader(string(data)))
	var walk func(n *kyaml.Node, up map[*kyaml.Node]bool) bool
	walk = func(n *kyaml.Node, up map[*kyaml.Node]bool) bool {
		if n.Kind == kyaml.AliasNode {
			return n.Alias == nil || up[n.Alias]
		}
		up[n] = true
		defer delete(up, n)
		for _, c := range n.Content {
			if walk(c, up) {
				return true
			}
		}
		return false
	}
	for {
		var n kyaml.Node
		if err := dec.Decode(&n); err != nil {
			return false
		}
		if walk(&n, map[*kyaml.Node]bool{}) {
			return true
		}
	}
}

// checkEdit runs the three properties for one update of dir in tree.
func checkEdit(t *testing.T, tree fstest.MapFS, dir string, target string, u Update) {
	for _, f := range tree {
		if recursiveAlias(f.Data) {
			t.Skip("an alias to its own ancestor: kustomize's renderer would overflow its stack")
		}
	}
	before, err := renderTree(tree, dir)
	if err != nil {
		t.Skip("kustomize does not render the input")
	}
	res, err := Apply(tree, Options{Path: target, Updates: []Update{u}})
	if err != nil {
		// Property 3: a refusal names the file (no result, so nothing can be written).
		if res != nil || !strings.Contains(err.Error(), path.Dir(target)) && !strings.Contains(err.Error(), "kubernetes/") {
			t.Fatalf("refusal without the file: %v", err)
		}
		return
	}
	after := fstest.MapFS{}
	for p, f := range tree {
		after[p] = f
	}
	for p, b := range res.Files {
		after[p] = &fstest.MapFile{Data: b}
		checkBytes(t, p, tree[p].Data, b)
	}
	// Property 1: still renders; only the changed containers' images differ, exactly as asked.
	rendered, err := renderTree(after, dir)
	if err != nil {
		t.Fatalf("kustomize no longer renders after %s: %v\n%s", u, err, res.Files)
	}
	imgBefore, restBefore := images(t, before)
	imgAfter, restAfter := images(t, rendered)
	if restBefore != restAfter {
		t.Fatalf("the render changed outside image fields after %s:\n%s\n---- became ----\n%s", u, restBefore, restAfter)
	}
	for k, was := range imgBefore {
		now := imgAfter[k]
		if now == was {
			continue
		}
		r0, _, _ := splitRef(was)
		r1, tag, digest := splitRef(now)
		if r1 != r0 || tag != u.Tag || digest != u.Digest {
			t.Fatalf("%s: image %s became %s after %s", k, was, now, u)
		}
	}
	if len(imgAfter) != len(imgBefore) {
		t.Fatalf("containers appeared or vanished: %v → %v", imgBefore, imgAfter)
	}
	// Re-applying is a no-op.
	again, err := Apply(after, Options{Path: target, Updates: []Update{u}})
	if err != nil || len(again.Files) != 0 {
		t.Fatalf("re-applying %s: %v, files %v", u, err, again)
	}
}

// update builds a valid update from fuzzed parts, or reports false.
func update(name, tag, digestHex string) (Update, bool) {
	u := Update{Name: name, Tag: tag}
	if digestHex != "" {
		u.Digest = "sha256:" + digestHex
	}
	return u, u.Validate() == nil
}

var fuzzNames = []string{"api", "web", "ghcr.io/acme/api", "registry.local:5000/team/web", "wanderlust-backend", "ghcr.io/wanderlust-app/wanderlust-frontend", "backend"}

func pick(b byte, from []string) string { return from[int(b)%len(from)] }

func digestOf(b byte) string {
	if b%3 == 0 {
		return ""
	}
	return strings.Repeat(fmt.Sprintf("%x", b%16), 64)
}

// kustomizationSeeds are the table's files and this repository's overlays.
func kustomizationSeeds(t testing.TB) []string {
	seeds := []string{
		"resources: [d.yaml, e.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n",
		"resources: [d.yaml]\nimages:\n- name: one.example/x/api\n  newTag: \"1\"\n- name: two.example/y/api\n  newTag: \"1\"\n",
		"\xef\xbb\xbfresources: [d.yaml]\nimages: [{name: ghcr.io/acme/api, newTag: 1.0.0}]\n",
		"resources:\r\n- d.yaml\r\n- e.yaml\r\nimages:\r\n- name: ghcr.io/acme/api\r\n  newTag: 1.0.0\r\n",
		"resources:\r\n- d.yaml\r\n",
		"resources: [d.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newTag: v1\n  newTag: v0\n",
		"resources: [d.yaml, e.yaml]\nimages: [{name: ghcr.io/acme/api, newTag: 1.0.0, digest: sha256:" + strings.Repeat("a", 64) + "}]\n",
		"resources: [d.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newName: registry.local:5000/team/backend\n  newTag: 1.0.0\n",
		"x-api: &api\n  name: ghcr.io/acme/api\n  newTag: 1.0.0\nresources: [d.yaml]\nimages:\n- *api\n",
		"resources: [d.yaml, e.yaml]\nimages: []\n",
		"# comment\nresources:\n  - d.yaml   # the api\n  - e.yaml\nimages:\n  - name: registry.local:5000/team/web\n    newTag: '2.1'   # pinned\n    digest: sha256:" + strings.Repeat("b", 64) + "\n",
	}
	for _, env := range []string{"dev", "staging", "prod"} {
		b, err := os.ReadFile("../../../kubernetes/overlays/" + env + "/kustomization.yaml")
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	return seeds
}

func FuzzKustomizationEdit(f *testing.F) {
	for i, s := range kustomizationSeeds(f) {
		for j, tag := range []string{"2.0.0", "yes", "1.10", "v2", "NO", "0755"} {
			f.Add([]byte(s), byte(i+j), tag, byte(i*j))
		}
	}
	tree := fuzzTree(f)
	f.Fuzz(func(t *testing.T, kustomization []byte, nameSel byte, tag string, digestSel byte) {
		u, ok := update(pick(nameSel, fuzzNames), tag, digestOf(digestSel))
		if !ok || len(kustomization) > 4096 {
			t.Skip()
		}
		tr := fstest.MapFS{}
		for p, f := range tree {
			tr[p] = f
		}
		tr["kubernetes/overlays/fz/kustomization.yaml"] = &fstest.MapFile{Data: kustomization}
		checkEdit(t, tr, "kubernetes/overlays/fz", "kubernetes/overlays/fz", u)
	})
}

func FuzzWorkloadEdit(f *testing.F) {
	seeds := []string{
		deployment,
		"\xef\xbb\xbf{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: api, image: \"ghcr.io/acme/api:1\"}]}}\n",
		strings.ReplaceAll(deployment, "\n", "\r\n"),
		"kind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: &img ghcr.io/acme/api:1\n  - name: b\n    image: *img\n",
		"apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: api\n            image: 'ghcr.io/acme/api:1.0.0@sha256:" + strings.Repeat("c", 64) + "'\n",
		deployment + "---\n" + strings.NewReplacer("name: api", "name: api2", "app: api", "app: api2").Replace(deployment),
		// An Argo Rollout with its own template, beside the Deployment.
		deployment + "---\n" + strings.NewReplacer("apiVersion: apps/v1", "apiVersion: argoproj.io/v1alpha1", "kind: Deployment", "kind: Rollout").Replace(deployment),
	}
	for i, s := range seeds {
		for j, tag := range []string{"2.0.0", "y", "1e3", "latest"} {
			f.Add([]byte(s), byte(i+j), tag, byte(i+2*j))
		}
	}
	f.Fuzz(func(t *testing.T, workload []byte, nameSel byte, tag string, digestSel byte) {
		u, ok := update(pick(nameSel, fuzzNames), tag, digestOf(digestSel))
		if !ok || len(workload) > 4096 {
			t.Skip()
		}
		tr := fstest.MapFS{
			"k/kustomization.yaml": {Data: []byte("resources: [w.yaml]\n")},
			"k/w.yaml":             {Data: workload},
		}
		checkEdit(t, tr, "k", "k/w.yaml", u)
	})
}

// FuzzValues edits a fixed kustomization with arbitrary registries (with ports), tags and digests:
// what kustomize renders must be exactly the reference asked for.
func FuzzValues(f *testing.F) {
	for _, s := range [][3]string{{"registry.local:5000/team/api", "1.0.0", ""}, {"localhost:5000/api", "yes", "ab"}, {"ghcr.io/acme/api", "0x1F", ""},
		{"my.registry:443/a/b/c", "1_000", "cd"}, {"ghcr.io/acme/api", "~", ""}, {"docker.io/library/nginx", "1.27-alpine", "ef"}, {"api", "null", ""}, {"ghcr.io/acme/api", "on", "01"}} {
		f.Add(s[0], s[1], s[2])
	}
	tree := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("resources: [d.yaml]\nimages:\n- name: ghcr.io/acme/api\n  newTag: 1.0.0\n")},
		"k/d.yaml":             {Data: []byte(deployment)},
	}
	f.Fuzz(func(t *testing.T, newName, tag, digestSeed string) {
		u := Update{Name: "ghcr.io/acme/api", NewName: newName, Tag: tag}
		if digestSeed != "" {
			u.Digest = "sha256:" + strings.Repeat(fmt.Sprintf("%x", len(digestSeed)%16), 64)
		}
		if u.Validate() != nil || strings.Contains(newName, "@") {
			t.Skip()
		}
		res, err := Apply(tree, Options{Path: "k", Updates: []Update{u}})
		if err != nil {
			t.Fatalf("a valid update was refused: %v", err)
		}
		after := fstest.MapFS{"k/d.yaml": tree["k/d.yaml"], "k/kustomization.yaml": {Data: res.Files["k/kustomization.yaml"]}}
		checkBytes(t, "k/kustomization.yaml", tree["k/kustomization.yaml"].Data, res.Files["k/kustomization.yaml"])
		docs, err := renderTree(after, "k")
		if err != nil {
			t.Fatalf("kustomize does not render %q: %v", res.Files["k/kustomization.yaml"], err)
		}
		imgs, _ := images(t, docs)
		want := newName
		if want == "" {
			want = "ghcr.io/acme/api" // no new name: the entry keeps its own
		}
		if tag != "" {
			want += ":" + tag
		}
		if u.Digest != "" {
			want += "@" + u.Digest
		}
		if got := imgs["Deployment/api containers[0]"]; got != want {
			t.Fatalf("kustomize renders %q, want %q (file %q)", got, want, res.Files["k/kustomization.yaml"])
		}
	})
}

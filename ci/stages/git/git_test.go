package git

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// bareRepo makes a bare repository at a file:// URL seeded with files.
func bareRepo(t *testing.T, files map[string]string) (dir, url string) {
	t.Helper()
	srv, err := gitserver.Start(t.TempDir(), "u", "p") // only its repository helpers are used here
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	tree := fstest.MapFS{}
	for p, c := range files {
		tree[p] = &fstest.MapFile{Data: []byte(c), Mode: 0o644}
	}
	if err := srv.CreateRepo("r", "main", tree); err != nil {
		t.Fatal(err)
	}
	return srv.GitDir("r"), "file://" + srv.GitDir("r")
}

// cloned clones url's main branch as Commit does and returns the run and the head commit.
func cloned(t *testing.T, url string) (*run, *object.Commit) {
	t.Helper()
	r, err := newRun(Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.fetchHead(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	head, err := r.headCommit()
	if err != nil {
		t.Fatal(err)
	}
	return r, head
}

// setFile is a Change that sets one file, with the file's previous content as its value.
func setFile(path, content string) Change {
	return func(head fs.FS) (*Patch, error) {
		old, err := fs.ReadFile(head, path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		p := &Patch{Values: []Value{{Key: path, From: string(old), To: content}}, Message: "set " + path}
		if string(old) != content {
			p.Files = map[string][]byte{path: []byte(content)}
		}
		return p, nil
	}
}

func TestFileURLAddAndModify(t *testing.T) {
	dir, url := bareRepo(t, map[string]string{"a/b/c.yaml": "one\n", "a/z.txt": "z\n", "top.txt": "t\n"})
	res, err := Commit(context.Background(), Options{URL: url}, func(head fs.FS) (*Patch, error) {
		return &Patch{Files: map[string][]byte{
			"a/b/c.yaml":        []byte("two\n"),
			"a/b-new/d.txt":     []byte("new dir\n"), // sorts between "a/b" and "a/z.txt" only if trees are ordered as git does
			"a/b.txt":           []byte("file beside dir\n"),
			"brand/new/path.md": []byte("deep\n"),
		}, Message: "edit"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed {
		t.Fatalf("not pushed: %+v", res)
	}
	// git itself must accept every tree we wrote (fsck checks entry order and modes).
	if out, err := gitserver.Output(dir, "fsck", "--strict", "--no-dangling"); err != nil {
		t.Fatalf("fsck: %v\n%s", err, out)
	}
	for p, want := range map[string]string{"a/b/c.yaml": "two\n", "a/b-new/d.txt": "new dir\n", "a/b.txt": "file beside dir\n", "brand/new/path.md": "deep\n", "a/z.txt": "z\n", "top.txt": "t\n"} {
		got, err := gitserver.Output(dir, "show", "main:"+p)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	author, _ := gitserver.Output(dir, "log", "-1", "--format=%an <%ae>")
	if strings.TrimSpace(author) != "Wanderlust CI <ci@wanderlust.invalid>" {
		t.Errorf("default author = %q", author)
	}
}

// TestTreeMatchesGit checks that a tree written by writeTree has the very hash git computes for the
// same content (so object order, modes and encoding are git's).
func TestTreeMatchesGit(t *testing.T) {
	dir, _ := bareRepo(t, map[string]string{"x/a.yaml": "a\n", "x-y": "file\n", "x.y/b": "b\n"})
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", dir, work); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{"x/a.yaml": "A\n", "x/new.yaml": "n\n", "x0/z": "z\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := gitserver.Git(work, "add", "-A"); err != nil {
		t.Fatal(err)
	}
	want, err := gitserver.Output(work, "write-tree")
	if err != nil {
		t.Fatal(err)
	}

	r, head := cloned(t, "file://"+dir)
	tree, err := r.objects(context.Background()).tree(head.TreeHash)
	if err != nil {
		t.Fatal(err)
	}
	got, created, err := writeTree(r.st, r.objects(context.Background()), tree, map[string][]byte{"x/a.yaml": []byte("A\n"), "x/new.yaml": []byte("n\n"), "x0/z": []byte("z\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != strings.TrimSpace(want) {
		t.Errorf("tree %s, git says %s", got, strings.TrimSpace(want))
	}
	// 3 blobs + trees: root, x, x0.
	if len(created) != 6 {
		t.Errorf("created %d objects, want 6", len(created))
	}
}

func TestTreeFSConformsToFS(t *testing.T) {
	_, url := bareRepo(t, map[string]string{"k/base/a.yaml": "a: 1\n", "k/overlays/dev/kustomization.yaml": "images: []\n", "README.md": "r\n"})
	r, head := cloned(t, url)
	fsys, err := newTreeFS(head, r.objects(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(fsys, "k/base/a.yaml", "k/overlays/dev/kustomization.yaml", "README.md"); err != nil {
		t.Fatal(err)
	}
}

func TestConflictAndRebaseOnFileRemote(t *testing.T) {
	dir, url := bareRepo(t, map[string]string{"v.txt": "1", "w.txt": "1"})
	// Simulate another writer between our read and our push by moving the branch inside the Change
	// the first time it runs.
	moved := false
	other := func() {
		work := t.TempDir()
		_ = gitserver.Git("", "clone", "-q", dir, work)
		_ = os.WriteFile(filepath.Join(work, "w.txt"), []byte("other"), 0o644)
		_ = gitserver.Git(work, "commit", "-qam", "someone else")
		_ = gitserver.Git(work, "push", "-q", "origin", "main")
	}
	res, err := Commit(context.Background(), Options{URL: url}, func(head fs.FS) (*Patch, error) {
		if !moved {
			moved = true
			other()
		}
		return setFile("v.txt", "2")(head)
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 {
		t.Errorf("attempts = %d, want 2", res.Attempts)
	}
	for p, want := range map[string]string{"v.txt": "2", "w.txt": "other"} {
		if got, _ := gitserver.Output(dir, "show", "main:"+p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}

	// Now the other writer changes the very field we set: a conflict, naming their commit.
	moved = false
	_, err = Commit(context.Background(), Options{URL: url}, func(head fs.FS) (*Patch, error) {
		if !moved {
			moved = true
			work := t.TempDir()
			_ = gitserver.Git("", "clone", "-q", dir, work)
			_ = os.WriteFile(filepath.Join(work, "w.txt"), []byte("theirs"), 0o644)
			_ = gitserver.Git(work, "commit", "-qam", "they set w")
			_ = gitserver.Git(work, "push", "-q", "origin", "main")
		}
		return setFile("w.txt", "ours")(head)
	})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	theirs, _ := gitserver.Output(dir, "rev-parse", "main")
	if ce.Commit != strings.TrimSpace(theirs) || ce.Subject != "they set w" || ce.Theirs != "theirs" || ce.Base != "other" {
		t.Errorf("conflict = %+v", ce)
	}
	if got, _ := gitserver.Output(dir, "show", "main:w.txt"); got != "theirs" {
		t.Errorf("their value was overwritten: %q", got)
	}
}

func TestUnchangedMakesNoCommit(t *testing.T) {
	dir, url := bareRepo(t, map[string]string{"v.txt": "1"})
	before, _ := gitserver.Output(dir, "rev-parse", "main")
	res, err := Commit(context.Background(), Options{URL: url}, setFile("v.txt", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Pushed || res.SHA != strings.TrimSpace(before) {
		t.Errorf("result = %+v", res)
	}
	// A patch whose files equal the head's content is no change either.
	res, err = Commit(context.Background(), Options{URL: url}, func(fs.FS) (*Patch, error) {
		return &Patch{Files: map[string][]byte{"v.txt": []byte("1")}, Message: "noop"}, nil
	})
	if err != nil || res.Changed {
		t.Errorf("identical content: %+v, %v", res, err)
	}
}

func TestAuthValidation(t *testing.T) {
	for _, c := range []struct {
		url  string
		auth Auth
		want string
	}{
		{"", Auth{}, "URL is required"},
		{"https://user:pass@example.test/r.git", Auth{}, "must not carry credentials"},
		{"https://user@example.test/r.git", Auth{Token: "tttttttt"}, "must not carry credentials"},
		{"ssh://git@example.test/r.git", Auth{}, "SSH private key"},
		{"git@example.test:r.git", Auth{SSHPrivateKey: []byte("not a key")}, "known_hosts"},
		{"git@example.test:r.git", Auth{SSHPrivateKey: []byte("not a key"), SSHKnownHosts: []byte("example.test ssh-ed25519 AAAA")}, "cannot be read"},
		{"ftp://example.test/r.git", Auth{}, "unsupported"},
		{"https://ci:ghp_planted99@exa mple.test%zz/r.git", Auth{}, "does not parse"},
	} {
		_, err := Commit(context.Background(), Options{URL: c.url, Auth: c.auth}, setFile("x", "y"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.url, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "pass@") || strings.Contains(err.Error(), "ghp_planted99")) {
			t.Errorf("credentials echoed: %v", err)
		}
	}
}

func TestRedact(t *testing.T) {
	a := Auth{Token: "tok-abcdef123"}
	err := redact(errors.New("failed at https://x/?t=tok-abcdef123"), a)
	if strings.Contains(err.Error(), "tok-abcdef123") || !strings.Contains(err.Error(), "***") {
		t.Errorf("redact: %v", err)
	}
	base := permanent(errors.New("tok-abcdef123"))
	if !isPermanent(redact(base, a)) {
		t.Error("redaction lost the error chain")
	}
}

// countBlobs counts the blobs in the run's object store.
func countBlobs(t *testing.T, r *run) int { return count(t, r, plumbing.BlobObject) }

func count(t *testing.T, r *run, typ plumbing.ObjectType) int {
	t.Helper()
	iter, err := r.st.IterEncodedObjects(typ)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = iter.ForEach(func(plumbing.EncodedObject) error { n++; return nil })
	return n
}

// TestPartialCloneFetchesOnlyWhatTheEditReads serves the repository over smart HTTP like GitHub does
// (filtered fetches allowed): only the prefetched directory's blobs come up front, a blob outside it
// comes when it is read, and the push still lands.
func TestPartialCloneFetchesOnlyWhatTheEditReads(t *testing.T) {
	for _, partial := range []bool{true, false} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) {
			srv, err := gitserver.Start(t.TempDir(), "u", "p")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			srv.NoPartialClone = !partial
			tree := fstest.MapFS{"k/a.yaml": {Data: []byte("a\n")}, "k/sub/b.yaml": {Data: []byte("b\n")}, "other/c.txt": {Data: []byte("c\n")}}
			for i := 0; i < 50; i++ {
				tree[fmt.Sprintf("src/f%02d.go", i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf("package f%d\n", i))}
			}
			if err := srv.CreateRepo("r", "main", tree); err != nil {
				t.Fatal(err)
			}
			r, err := newRun(Options{URL: srv.RepoURL("r"), Auth: Auth{Username: "u", Token: "p"}, Prefetch: []string{"k"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.fetchHead(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			if r.partial != partial {
				t.Fatalf("partial = %v, want %v", r.partial, partial)
			}
			head, _ := r.headCommit()
			if err := r.prefetch(context.Background(), head); err != nil {
				t.Fatal(err)
			}
			blobs, trees := 53, 5
			if partial {
				blobs, trees = 2, 3 // k/a.yaml, k/sub/b.yaml; the root, k and k/sub
			}
			if n := countBlobs(t, r); n != blobs {
				t.Errorf("%d blobs after the fetch, want %d", n, blobs)
			}
			if n := count(t, r, plumbing.TreeObject); n != trees {
				t.Errorf("%d trees after the fetch, want %d", n, trees)
			}
			fsys, _ := newTreeFS(head, r.objects(context.Background()))
			if b, err := fs.ReadFile(fsys, "other/c.txt"); err != nil || string(b) != "c\n" {
				t.Fatalf("read outside the prefetch: %q, %v", b, err)
			}
			if partial && countBlobs(t, r) != 3 {
				t.Errorf("%d blobs after a lazy read, want 3", countBlobs(t, r))
			}
		})
	}
}

func TestContains(t *testing.T) {
	srv, err := gitserver.Start(t.TempDir(), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.CreateRepo("r", "main", fstest.MapFS{"k/v.yaml": {Data: []byte("tag: 1\n")}, "k/w.yaml": {Data: []byte("w: 1\n")}}); err != nil {
		t.Fatal(err)
	}
	o := Options{URL: srv.RepoURL("r"), Auth: Auth{Username: "u", Token: "p"}, Prefetch: []string{"k"}}
	seed, _ := srv.Head("r", "main")
	bump, err := Commit(context.Background(), o, setFile("k/v.yaml", "tag: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := Commit(context.Background(), o, setFile("k/w.yaml", "w: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc, anc string
		want      bool
	}{{other.SHA, bump.SHA, true}, {other.SHA, seed, true}, {bump.SHA, other.SHA, false}, {bump.SHA, bump.SHA, true}} {
		got, err := Contains(context.Background(), o, c.desc, c.anc)
		if err != nil || got != c.want {
			t.Errorf("Contains(%s, %s) = %v, %v; want %v", c.desc[:7], c.anc[:7], got, err, c.want)
		}
	}
	// History is walked by time, not by a number of commits: 450 commits later (a busy branch's
	// day), the bump is still found in the head's history.
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", srv.GitDir("r"), work); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 450; i++ {
		if err := gitserver.Git(work, "commit", "-q", "--allow-empty", "-m", fmt.Sprint("busy ", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := gitserver.Git(work, "push", "-q", "origin", "main"); err != nil {
		t.Fatal(err)
	}
	head, _ := srv.Head("r", "main")
	if got, err := Contains(context.Background(), o, head, bump.SHA); err != nil || !got {
		t.Errorf("Contains(head, bump) 450 commits later = %v, %v", got, err)
	}
}

package git

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// Notes of eight concurrent runs all land on refs/notes/deployments (created by the first), and git
// itself reads them.
func TestConcurrentNotesAllLandAndGitReadsThem(t *testing.T) {
	srv, err := gitserver.Start(t.TempDir(), "bot", "notes-token-1a2b")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.CreateRepo("r", "main", os.DirFS("../../../kubernetes")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", srv.GitDir("r"), work); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for i := 0; i < 8; i++ {
		if err := gitserver.Git(work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("deploy %d", i)); err != nil {
			t.Fatal(err)
		}
		sha, _ := gitserver.Output(work, "rev-parse", "HEAD")
		targets = append(targets, strings.TrimSpace(sha))
	}
	if err := gitserver.Git(work, "push", "-q", "origin", "main"); err != nil {
		t.Fatal(err)
	}
	o := Options{URL: srv.RepoURL("r"), Auth: Auth{Username: "bot", Token: "notes-token-1a2b"}}
	var wg sync.WaitGroup
	errs := make(chan error, len(targets))
	for i, target := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := AddNote(context.Background(), o, NotesRef, target, []byte(fmt.Sprintf(`{"run":%d}`, i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := gitserver.Git(work, "fetch", "-q", "origin", "refs/notes/deployments:refs/notes/deployments"); err != nil {
		t.Fatal(err)
	}
	for i, target := range targets {
		got, err := gitserver.Output(work, "notes", "--ref=deployments", "show", target)
		if err != nil || strings.TrimSpace(got) != fmt.Sprintf(`{"run":%d}`, i) {
			t.Errorf("git notes show %s = %q, %v", target[:12], got, err)
		}
	}
	notes, err := ReadNotes(context.Background(), o, NotesRef)
	if err != nil || len(notes) != len(targets) || string(notes[targets[3]]) != `{"run":3}` {
		t.Errorf("ReadNotes: %d notes, %v", len(notes), err)
	}
	hist, err := History(context.Background(), o, 100)
	if err != nil || len(hist) != 9 || hist[0].SHA != targets[7] || !strings.HasPrefix(hist[0].Message, "deploy 7") {
		t.Errorf("History: %d entries, %v", len(hist), err)
	}
	// A note can be replaced (the outcome is known after the first record).
	if _, err := AddNote(context.Background(), o, NotesRef, targets[0], []byte(`{"run":0,"result":"succeeded"}`)); err != nil {
		t.Fatal(err)
	}
	if notes, _ := ReadNotes(context.Background(), o, NotesRef); string(notes[targets[0]]) != `{"run":0,"result":"succeeded"}` {
		t.Errorf("replaced note: %q", notes[targets[0]])
	}
}

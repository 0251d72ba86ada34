// Package bench measures the GitOps write path against the seed's way of doing it, in one run.
//
//	make bench   (go test -run '^$' -bench . -benchtime 1x ./bench)
//
// P1: our bump+commit+push vs `git clone && sed -i && git commit -am && git push`, on a repository of
// 10,000 files with 1,000 and 5,000 commits of history, served by git http-backend on loopback.
// P3: N = 8 and N = 50 concurrent bumps on that repository (each of a different overlay, and 50 of
// different images in one kustomization): all land, none forced, and their p95 latency over the
// serial floor N × one bump.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

const (
	files    = 10_000
	token    = "bench-token"
	user     = "bench"
	rounds   = 5 // timed runs per side and history depth
	parallel = 8
)

// envs are fifty overlays (copies of dev), so that concurrent bumps touch different files; "many" is
// one more whose kustomization lists fifty images, so that fifty bumps touch one file.
var envs = func() []string {
	e := []string{"dev", "staging", "prod", "qa", "perf", "demo", "canary", "sandbox"}
	for i := len(e); i < 50; i++ {
		e = append(e, fmt.Sprintf("env%02d", i))
	}
	return e
}()

// services are the fifty images of the "many" overlay.
var services = func() []string {
	var s []string
	for i := 0; i < 50; i++ {
		s = append(s, fmt.Sprintf("svc%02d", i))
	}
	return s
}()

func BenchmarkGitOps(b *testing.B) {
	srv, err := gitserver.Start(b.TempDir(), user, token)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()

	var singleMedian time.Duration
	histories := []int{1000, 5000}
	if os.Getenv("BENCH_P3_ONLY") != "" { // iterate on P3 alone (P1 still measures the single bump)
		histories = []int{5000}
	}
	for _, history := range histories {
		name := fmt.Sprintf("h%d", history)
		start := time.Now()
		if err := makeRepo(srv, name, history); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s (%d files, %d commits) in %v", name, files, history, time.Since(start).Round(time.Millisecond))

		var ours, shell []time.Duration
		var oursRequests int64
		for i := 0; i < rounds; i++ {
			r0 := srv.Requests()
			tag := fmt.Sprintf("%d.%d.0", history, i)
			d, err := timeOurs(srv, name, "dev", "wanderlust-backend="+tag)
			if err != nil {
				b.Fatal(err)
			}
			ours = append(ours, d)
			oursRequests += srv.Requests() - r0
			d, err = timeShell(srv, name, "dev", tag+"-sh")
			if err != nil {
				b.Fatal(err)
			}
			shell = append(shell, d)
		}
		o, s := median(ours), median(shell)
		ratio := float64(o) / float64(s)
		fmt.Printf("BENCH P1 ours_ms=%d shell_ms=%d ratio=%.2f history=%d files=%d runs=%d ours_http_requests=%d\n",
			o.Milliseconds(), s.Milliseconds(), ratio, history, files, rounds, oursRequests/rounds)
		b.ReportMetric(float64(o.Milliseconds()), fmt.Sprintf("ours_ms/h%d", history))
		b.ReportMetric(ratio, fmt.Sprintf("ratio/h%d", history))
		singleMedian = o

		if history == 5000 {
			for _, c := range []struct {
				writers int
				oneFile bool
			}{{8, false}, {50, false}, {50, true}} {
				if err := p3(b, srv, name, singleMedian, c.writers, c.oneFile); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// p3 starts writers concurrent bumps (of different overlays, or of different images of the "many"
// overlay) and reports their p95 latency over the serial floor: writers × one bump.
func p3(b *testing.B, srv *gitserver.Server, name string, single time.Duration, writers int, oneFile bool) error {
	before, err := srv.CommitCount(name, "main")
	if err != nil {
		return err
	}
	requests := srv.Requests()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for i := 0; i < writers; i++ {
		env, update := envs[i], fmt.Sprintf("wanderlust-frontend=9.%d.%d", writers, i)
		if oneFile {
			env, update = "many", fmt.Sprintf("%s=9.%d.%d", services[i], writers, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := timeOurs(srv, name, env, update)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("P3 writers=%d: %w", writers, err)
	}
	after, err := srv.CommitCount(name, "main")
	if err != nil {
		return err
	}
	if after-before != writers {
		return fmt.Errorf("P3: %d commits landed, want %d", after-before, writers)
	}
	// Nothing was forced: every commit of the batch is on the first-parent chain, one per writer.
	chain, err := gitserver.Output(srv.GitDir(name), "rev-list", "--first-parent", "--count", fmt.Sprintf("main~%d..main", writers))
	if err != nil || strings.TrimSpace(chain) != fmt.Sprint(writers) {
		return fmt.Errorf("P3: history is not a chain of %d commits (%q, %v)", writers, chain, err)
	}
	p95 := percentile(lat, 0.95)
	serial := time.Duration(writers) * single
	layout := "overlays"
	if oneFile {
		layout = "one-kustomization"
	}
	perBump := float64(srv.Requests()-requests) / float64(writers)
	fmt.Printf("BENCH P3 writers=%d layout=%s landed=%d/%d p95_ms=%d single_ms=%d p95_over_serial=%.2f http_requests_per_bump=%.1f\n",
		writers, layout, len(lat), writers, p95.Milliseconds(), single.Milliseconds(), float64(p95)/float64(serial), perBump)
	if b != nil {
		b.ReportMetric(float64(p95)/float64(serial), fmt.Sprintf("p95_over_serial/%d-%s", writers, layout))
	}
	return nil
}

func timeOurs(srv *gitserver.Server, repo, env, update string) (time.Duration, error) {
	u, err := manifest.ParseUpdate(update)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	res, err := bump.Run(context.Background(), bump.Options{
		Git: git.Options{URL: srv.RepoURL(repo), Auth: git.Auth{Username: user, Token: token}},
		Env: env, Updates: []manifest.Update{u},
	})
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if !res.Pushed {
		return 0, fmt.Errorf("ours: nothing pushed for %s", update)
	}
	return d, nil
}

// timeShell is the seed's Jenkins stage: clone, sed, commit -am, push, with the git CLI.
func timeShell(srv *gitserver.Server, repo, env, tag string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "shell-bump-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	url := strings.Replace(srv.RepoURL(repo), "http://", "http://"+user+":"+token+"@", 1)
	file := "kubernetes/overlays/" + env + "/kustomization.yaml"
	start := time.Now()
	steps := [][]string{
		{"git", "clone", "-q", url, dir},
		{"sed", "-i", "-e", `/wanderlust-backend$/{n;s/newTag: .*/newTag: "` + tag + `"/}`, filepath.Join(dir, file)},
		{"git", "-C", dir, "commit", "-q", "-am", "Update backend image to " + tag},
		{"git", "-C", dir, "push", "-q", "origin", "main"},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
			"GIT_AUTHOR_NAME=Jenkins", "GIT_AUTHOR_EMAIL=j@example.test", "GIT_COMMITTER_NAME=Jenkins", "GIT_COMMITTER_EMAIL=j@example.test")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v\n%s", strings.Join(s[:2], " "), err, out)
		}
	}
	return time.Since(start), nil
}

// makeRepo builds a bare repository with the kubernetes/ tree (eight overlays), `files` filler files
// and `history` commits, with git fast-import.
func makeRepo(srv *gitserver.Server, name string, history int) error {
	return fastImport(srv, name, func(w *bufio.Writer) error {
		mark := 0
		blob := func(content string) int {
			mark++
			fmt.Fprintf(w, "blob\nmark :%d\ndata %d\n%s\n", mark, len(content), content)
			return mark
		}
		paths := map[string]int{}
		root := os.DirFS("../kubernetes")
		err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(root, p)
			if err != nil {
				return err
			}
			if strings.HasPrefix(p, "overlays/dev/") {
				for _, env := range envs {
					paths["kubernetes/overlays/"+env+"/"+filepath.Base(p)] = blob(string(b))
				}
				return nil
			}
			paths["kubernetes/"+p] = blob(string(b))
			return nil
		})
		if err != nil {
			return err
		}
		many := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n"
		for _, svc := range services {
			many += "  - name: ghcr.io/wanderlust-app/" + svc + "\n    newTag: \"1.0.0\"\n"
		}
		paths["kubernetes/overlays/many/kustomization.yaml"] = blob(many)
		filler := func(i, version int) string {
			return fmt.Sprintf("// file %d version %d\n%s", i, version, strings.Repeat(fmt.Sprintf("line of source %d\n", i), 12))
		}
		for i := 0; i < files; i++ {
			paths[fmt.Sprintf("src/pkg%03d/file%05d.go", i%100, i)] = blob(filler(i, 0))
		}
		when := int64(1_700_000_000)
		commit := func(msg string, changes map[string]int) {
			mark++
			when += 60
			fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Dev <dev@example.test> %d +0000\ndata %d\n%s\n", mark, when, len(msg), msg)
			keys := make([]string, 0, len(changes))
			for p := range changes {
				keys = append(keys, p)
			}
			sort.Strings(keys)
			for _, p := range keys {
				fmt.Fprintf(w, "M 100644 :%d %s\n", changes[p], p)
			}
			w.WriteString("\n")
		}
		commit("initial import", paths)
		for c := 1; c < history; c++ {
			i := (c * 7919) % files // touch files all over the tree
			p := fmt.Sprintf("src/pkg%03d/file%05d.go", i%100, i)
			commit(fmt.Sprintf("change %d", c), map[string]int{p: blob(filler(i, c))})
		}
		return nil
	})
}

// fastImport makes bare repository name on srv from the stream write writes, and repacks it.
func fastImport(srv *gitserver.Server, name string, write func(w *bufio.Writer) error) error {
	dir, err := srv.InitBare(name, "main")
	if err != nil {
		return err
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = dir
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("fast-import: %w", err)
	}
	return gitserver.Git(dir, "repack", "-adq")
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

package bench

import (
	"bufio"
	"context"
	"fmt"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/metrics"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// P9: metrics over a GitOps history of 5,000 commits (every fifth a deployment, each with its note),
// read from a git http-backend remote: commits only (no tree, no blob) plus the notes.
func BenchmarkMetrics(b *testing.B) {
	const commits, every = 5000, 5
	srv, err := gitserver.Start(b.TempDir(), user, token)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if err := makeDeployHistory(srv, "metrics", commits, every); err != nil {
		b.Fatal(err)
	}
	g := git.Options{URL: srv.RepoURL("metrics"), Auth: git.Auth{Username: user, Token: token}}
	start := time.Unix(1_700_000_000, 0)
	o := metrics.Options{Env: "prod", Since: start, Until: start.Add(time.Duration(commits+1) * time.Hour)}
	var times []time.Duration
	var envs []metrics.Env
	requests := srv.Requests()
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		envs, err = metrics.Collect(context.Background(), g, o, 0)
		times = append(times, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	if len(envs) != 1 || envs[0].Deployments != commits/every || envs[0].Unrecorded != 0 {
		b.Fatalf("metrics: %+v", envs)
	}
	d := median(times)
	fmt.Printf("BENCH P9 metrics_ms=%d commits=%d deployments=%d notes=%d runs=5 http_requests_per_run=%d goal_ms=2000\n",
		d.Milliseconds(), commits, commits/every, commits/every, (srv.Requests()-requests)/5)
	b.ReportMetric(float64(d.Milliseconds()), "metrics_ms")
}

// makeDeployHistory writes commits commits with git fast-import, every every-th a deployment to prod
// (trailers as deploy writes them) with its note on refs/notes/deployments.
func makeDeployHistory(srv *gitserver.Server, name string, commits, every int) error {
	return fastImport(srv, name, func(w *bufio.Writer) error {
		when := int64(1_700_000_000)
		var deploys []int
		for c := 1; c <= commits; c++ {
			when += 3600
			msg := fmt.Sprintf("chore: change %d", c)
			if c%every == 0 {
				msg = fmt.Sprintf("deploy(prod): backend 1.%d.0\n\nSource-Commit: %040x\nDeploy-Run: run-%d\nDeploy-Env: prod\nSource-Commit-Time: %s",
					c, c, c, time.Unix(when-1800, 0).UTC().Format(time.RFC3339))
				deploys = append(deploys, c)
			}
			fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter CI <ci@example.test> %d +0000\ndata %d\n%s\n", c, when, len(msg), msg)
			content := fmt.Sprintf("images:\n- name: backend\n  newTag: \"1.%d.0\"\n", c)
			fmt.Fprintf(w, "M 100644 inline kubernetes/overlays/prod/kustomization.yaml\ndata %d\n%s\n\n", len(content), content)
		}
		fmt.Fprintf(w, "commit refs/notes/deployments\ncommitter CI <ci@example.test> %d +0000\ndata 27\nDeployment records (notes)\n", when)
		for _, c := range deploys {
			t := time.Unix(1_700_000_000+int64(c)*3600, 0).UTC()
			note := fmt.Sprintf(`{"env":"prod","run":"run-%d","result":"succeeded","sourceCommitTime":%q,"healthy":%q}`,
				c, t.Add(-30*time.Minute).Format(time.RFC3339), t.Add(2*time.Minute).Format(time.RFC3339))
			fmt.Fprintf(w, "N inline :%d\ndata %d\n%s\n", c, len(note), note)
		}
		w.WriteString("\n")
		return nil
	})
}

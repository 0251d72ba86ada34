package metrics

import (
	"context"
	"encoding/xml"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

const token = "metrics-token-7f6e"

var day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday

func at(d int, hh, mm int) time.Time {
	return day0.Add(time.Duration(d)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}
func ptr(t time.Time) *time.Time { return &t }

// scripted is a deployment history: the commits (made with the git CLI at the given times, with
// the trailers a deploy writes, or the subject of an old bump) and the notes (written with record).
type scripted struct {
	subject, env string
	when         time.Time
	note         *record.Deployment // nil: made before records
	rollback     bool               // a rollback commit (Rolls-Back trailer), not a deployment
	app          bool               // an application commit, not a deployment
}

func history() []scripted {
	return []scripted{
		{subject: "deploy(prod): backend 1", env: "prod", when: at(1, 10, 0), note: &record.Deployment{Result: "succeeded", SourceCommitTime: ptr(at(1, 9, 0)), Healthy: ptr(at(1, 10, 5))}},
		{subject: "deploy(prod): backend 2", env: "prod", when: at(2, 12, 0), note: &record.Deployment{Result: "succeeded", SourceCommitTime: ptr(at(2, 10, 0)), Healthy: ptr(at(2, 12, 10))}},
		{subject: "fix: typo", app: true, when: at(2, 13, 0)},
		{subject: "deploy(prod): backend 3", env: "prod", when: at(3, 9, 0), note: &record.Deployment{Result: "failed", ChangeFailed: true, RolledBack: true,
			SourceCommitTime: ptr(at(3, 8, 0)), FailedAt: ptr(at(3, 9, 10)), Restored: ptr(at(3, 9, 25))}},
		{subject: "Roll back backend 3", rollback: true, when: at(3, 9, 11)},
		{subject: "deploy(staging): backend 2", env: "staging", when: at(4, 9, 0), note: &record.Deployment{Result: "succeeded", SourceCommitTime: ptr(at(2, 10, 0)), Healthy: ptr(at(4, 9, 3))}},
		{subject: "deploy(prod): backend 4", env: "prod", when: at(5, 15, 0), note: &record.Deployment{Result: "succeeded", SourceCommitTime: ptr(at(4, 15, 0)), Healthy: ptr(at(5, 15, 20))}},
		{subject: "deploy(prod): backend 5", env: "prod", when: at(8, 11, 0), note: &record.Deployment{Result: "failed", ChangeFailed: true, CanaryAborted: true,
			SourceCommitTime: ptr(at(8, 10, 0)), FailedAt: ptr(at(8, 11, 20))}},
		{subject: "deploy(prod): backend 6", env: "prod", when: at(9, 10, 0), note: &record.Deployment{Result: "succeeded", SourceCommitTime: ptr(at(9, 8, 0)), Healthy: ptr(at(9, 10, 30))}},
		{subject: "deploy(prod): backend 7", env: "prod", when: at(10, 10, 0), note: &record.Deployment{Result: "superseded"}},
		{subject: "deploy(prod): backend 8 (an old bump, no record)", env: "prod", when: at(11, 10, 0)},
		{subject: "deploy(prod): outside the window", env: "prod", when: at(15, 10, 0), note: &record.Deployment{Result: "succeeded", Healthy: ptr(at(15, 10, 1))}},
	}
}

// seed makes the repository and the history on a real git remote.
func seed(t *testing.T) git.Options {
	t.Helper()
	srv, err := gitserver.Start(t.TempDir(), "ci", token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.CreateRepo("gitops", "main", os.DirFS("../../../kubernetes")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", srv.GitDir("gitops"), work); err != nil {
		t.Fatal(err)
	}
	g := git.Options{URL: srv.RepoURL("gitops"), Auth: git.Auth{Username: "ci", Token: token}}
	var notes []record.Deployment
	for i, s := range history() {
		msg := s.subject
		switch {
		case s.rollback:
			msg += "\n\nRolls-Back: 0123456789abcdef0123456789abcdef01234567"
		case s.note != nil:
			msg += fmt.Sprintf("\n\nDeploy-Run: run-%d\nDeploy-Env: %s", i, s.env)
			if s.note.SourceCommitTime != nil {
				msg += "\nSource-Commit-Time: " + s.note.SourceCommitTime.Format(time.RFC3339)
			}
		}
		cmd := exec.Command("git", "commit", "-q", "--allow-empty", "-m", msg)
		cmd.Dir = work
		date := s.when.Format(time.RFC3339)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE="+date, "GIT_AUTHOR_DATE="+date, "GIT_AUTHOR_NAME=ci", "GIT_AUTHOR_EMAIL=ci@x.test",
			"GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@x.test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if s.note != nil {
			sha, _ := gitserver.Output(work, "rev-parse", "HEAD")
			n := *s.note
			n.Commit, n.Env, n.Run = strings.TrimSpace(sha), s.env, fmt.Sprintf("run-%d", i)
			notes = append(notes, n)
		}
	}
	if err := gitserver.Git(work, "push", "-q", "origin", "main"); err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		if err := record.Write(context.Background(), g, n); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func TestMetricsOfAScriptedHistory(t *testing.T) {
	g := seed(t)
	o := Options{Env: "prod", Since: day0, Until: day0.Add(14 * 24 * time.Hour)}
	envs, err := Collect(context.Background(), g, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 1 {
		t.Fatalf("%d environments", len(envs))
	}
	e := envs[0]
	// Expected values, by hand from the script above (window: 14 days):
	//   prod deployments in the window: backend 1–8 = 8 (the rollback and the app commit are not
	//   deployments; "outside the window" is outside) → 8/14 = 0.5714 per day, 4.0 per week: high.
	//   lead times of the successes: 1 (10:05−09:00 = 65m), 2 (12:10−10:00 = 130m), 4 (day5 15:20 −
	//   day4 15:00 = 1460m), 6 (10:30−08:00 = 150m); sorted 65, 130, 150, 1460: median (nearest rank
	//   2) = 130m, p90 (rank 4) = 1460m; 130m < 1 day: elite.
	//   changes that went out: 4 successes + 2 failures (3, 5) → 2/6 = 33.3%: low.
	//   restores: 3 rolled back 09:10 → 09:25 = 15m; 5 failed 11:20 day 8 → next Healthy, 6 at 10:30
	//   day 9 = 23h10m; median (rank 1 of 2) = 15m: elite.
	//   pipeline success: 4 of 6 (superseded 7 and unrecorded 8 are neither) = 66.7%.
	want := Env{Env: "prod", Deployments: 8, Unrecorded: 1, Succeeded: 4, ChangeFailures: 2, CaughtByCanary: 1, RolledBack: 1, Superseded: 1, LeadTimes: 4, Restores: 2,
		LeadTimeMedian: 130 * time.Minute, LeadTimeP90: 1460 * time.Minute, TimeToRestoreMedian: 15 * time.Minute,
		Bands: Bands{DeploymentFrequency: High, LeadTime: Elite, ChangeFailureRate: Low, TimeToRestore: Elite}}
	if e.Deployments != want.Deployments || e.Unrecorded != want.Unrecorded || e.Succeeded != want.Succeeded || e.ChangeFailures != want.ChangeFailures ||
		e.RolledBack != want.RolledBack || e.CaughtByCanary != want.CaughtByCanary || e.Superseded != want.Superseded || e.LeadTimes != want.LeadTimes || e.Restores != want.Restores ||
		e.LeadTimeMedian != want.LeadTimeMedian || e.LeadTimeP90 != want.LeadTimeP90 || e.TimeToRestoreMedian != want.TimeToRestoreMedian || e.Bands != want.Bands {
		t.Errorf("got  %+v\nwant %+v", e, want)
	}
	for name, c := range map[string][2]float64{"per day": {e.PerDay, 8.0 / 14}, "per week": {e.PerWeek, 4}, "change failure rate": {e.ChangeFailureRate, 2.0 / 6},
		"pipeline success": {e.PipelineSuccessRate, 4.0 / 6}} {
		if d := c[0] - c[1]; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	// Weeks (Monday starts): week 1 (day 0–6): 1, 2, 4 succeeded, 3 failed; week 2 (day 7–13): 6
	// succeeded, 5 failed, 7 superseded and 8 unrecorded as other.
	if len(e.Weeks) != 2 || e.Weeks[0].Succeeded != 3 || e.Weeks[0].Failed != 1 || e.Weeks[1].Succeeded != 1 || e.Weeks[1].Failed != 1 || e.Weeks[1].Other != 2 {
		t.Errorf("weeks %+v", e.Weeks)
	}
	md := Markdown(envs, o)
	for _, s := range []string{"### prod", "0.57 per day", "median 2.2h, p90 1.0d", "33.3% (2 of 6; 1 caught by the canary before full exposure)", "| low |", "66.7%", "1 deployments were made before deployment records"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	if c := CSV(envs); !strings.Contains(c, "prod,8,1,0.5714,4.0000,7800,87600,0.3333,900,0.6667,high,elite,low,elite") {
		t.Errorf("csv:\n%s", c)
	}
	// All environments: staging has its one deployment.
	all, _ := Collect(context.Background(), g, Options{Since: day0, Until: o.Until}, 0)
	if len(all) != 2 || all[1].Env != "staging" || all[1].Deployments != 1 {
		t.Errorf("all environments: %+v", all)
	}
}

// The chart is valid XML and, rendered by a real browser, shows green and red bars.
func TestChartRendersInABrowser(t *testing.T) {
	e := Env{Env: "prod", Weeks: []Week{{Start: day0, Succeeded: 3, Failed: 1, LeadTimeMedian: 2 * time.Hour}, {Start: day0.AddDate(0, 0, 7), Succeeded: 1, Failed: 1, Other: 2, LeadTimeMedian: 5 * time.Hour}}}
	svg := SVG(e)
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not valid XML: %v", err)
			}
			break
		}
	}
	if strings.Count(svg, `class="bar succeeded"`) != 2 || strings.Count(svg, `class="bar failed"`) != 2 || !strings.Contains(svg, `class="lead-time"`) {
		t.Errorf("svg:\n%s", svg)
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("WANDERLUST_E2E") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium is not installed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "chart.svg")
	if err := os.WriteFile(file, []byte(svg), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "chart.png")
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=720,320", "--screenshot="+shot, "file://"+file)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	green, red := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			switch {
			case r>>8 < 0x50 && g>>8 > 0x90 && bl>>8 < 0x70: // #2da44e
				green++
			case r>>8 > 0xb0 && g>>8 < 0x50 && bl>>8 < 0x50: // #cf222e
				red++
			}
		}
	}
	if green < 1000 || red < 500 {
		t.Errorf("the rendered chart shows %d green and %d red pixels (screenshot %s)", green, red, shot)
	}
	if dst := os.Getenv("WANDERLUST_CHART_SHOT"); dst != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(dst, b, 0o644)
	}
}

func TestParseSince(t *testing.T) {
	now := day0
	for in, want := range map[string]time.Time{"30d": now.AddDate(0, 0, -30), "2w": now.AddDate(0, 0, -14), "12h": now.Add(-12 * time.Hour), "2026-10-01T00:00:00Z": time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)} {
		if got, err := ParseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "-3d", "3x", "yesterday"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

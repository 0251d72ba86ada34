// Package metrics computes delivery metrics (DORA) from nothing but the GitOps repository: the
// deployment commits (their trailers) and the notes on refs/notes/deployments. No database, no SaaS.
//
// Definitions (per environment, over deployments made in [Since, Until)):
//   - deployment frequency: deployments ÷ days (and × 7 per week); every deployment commit counts,
//     recorded or not;
//   - lead time for changes: source commit → Healthy, of the deployments that became Healthy
//     (median and p90);
//   - change failure rate: deployments that failed because of the change, or were rolled back ÷
//     recorded deployments whose change went out (succeeded or failed);
//   - time to restore: a change failure's detection → Healthy again (its rollback, or else the next
//     deployment that became Healthy), median;
//   - pipeline success rate: recorded runs that succeeded (or found the version already deployed) ÷
//     recorded runs that succeeded or failed (superseded runs are neither) — deployments, and the
//     runs that made no deployment commit (refused in preflight, failed scan, build or gate,
//     already deployed; refs/notes/runs).
//
// Each has the performance band it falls in, per the clusters of DORA's Accelerate State of DevOps
// Report 2023; where its clusters overlap or leave gaps, a value takes the best band whose bound it
// meets (see Band*).
package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Deployment is one deployment commit and its record (nil when it was made before records).
type Deployment struct {
	Commit, Env, Run string
	Time             time.Time // the commit's time
	SourceCommitTime *time.Time
	Record           *record.Deployment
}

var deploySubject = regexp.MustCompile(`^deploy\(([a-z0-9-]+)\)`)

// Deployments finds the deployment commits of a history (Deploy-Env trailer, or the subject
// "deploy(<env>): …" of bumps made before records) and joins their notes. Rollback commits are not
// deployments.
func Deployments(history []git.Entry, notes map[string][]byte) []Deployment {
	var out []Deployment
	for _, e := range history {
		tr := record.ParseTrailers(e.Message)
		if tr[record.RollsBack] != "" {
			continue
		}
		env := tr[record.DeployEnv]
		if env == "" {
			m := deploySubject.FindStringSubmatch(e.Subject)
			if m == nil {
				continue
			}
			env = m[1]
		}
		d := Deployment{Commit: e.SHA, Env: env, Run: tr[record.DeployRun], Time: e.Committed}
		if t, err := time.Parse(time.RFC3339, tr[record.SourceCommitTime]); err == nil {
			d.SourceCommitTime = &t
		}
		if b, ok := notes[e.SHA]; ok {
			var r record.Deployment
			if json.Unmarshal(b, &r) == nil {
				d.Record = &r
				if d.SourceCommitTime == nil {
					d.SourceCommitTime = r.SourceCommitTime
				}
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// Options select the window and the environments.
type Options struct {
	// Env selects one environment ("" for each).
	Env string
	// Since and Until bound the window (Until default: now).
	Since, Until time.Time
	// Runs are the records of runs that made no deployment commit (record.ReadRuns): they count
	// for the pipeline success rate only.
	Runs []record.Deployment
}

// Env is the metrics of one environment.
type Env struct {
	Env         string `json:"env"`
	Deployments int    `json:"deployments"`
	// Unrecorded deployments were made before records: counted for frequency only.
	Unrecorded     int `json:"unrecorded"`
	Succeeded      int `json:"succeeded"`
	ChangeFailures int `json:"changeFailures"`
	RolledBack     int `json:"rolledBack"`
	// CaughtByCanary are the change failures aborted at a canary or blue-green step, before they
	// reached everyone (counted in ChangeFailures too, and shown apart).
	CaughtByCanary int `json:"caughtByCanary"`
	Superseded     int `json:"superseded"`
	// Runs that made no deployment commit (counted in the pipeline success rate).
	Runs                int           `json:"runsWithoutDeployment"`
	PerDay              float64       `json:"deploymentsPerDay"`
	PerWeek             float64       `json:"deploymentsPerWeek"`
	LeadTimeMedian      time.Duration `json:"leadTimeMedianNs"`
	LeadTimeP90         time.Duration `json:"leadTimeP90Ns"`
	LeadTimes           int           `json:"leadTimes"`
	ChangeFailureRate   float64       `json:"changeFailureRate"`
	TimeToRestoreMedian time.Duration `json:"timeToRestoreMedianNs"`
	Restores            int           `json:"restores"`
	PipelineSuccessRate float64       `json:"pipelineSuccessRate"`
	Bands               Bands         `json:"bands"`
	Weeks               []Week        `json:"weeks"`
}

// Bands are the DORA performance bands of an environment's metrics ("" when there is no data).
type Bands struct {
	DeploymentFrequency string `json:"deploymentFrequency"`
	LeadTime            string `json:"leadTime,omitempty"`
	ChangeFailureRate   string `json:"changeFailureRate,omitempty"`
	TimeToRestore       string `json:"timeToRestore,omitempty"`
}

// Week is one week of deployments, for the chart.
type Week struct {
	Start          time.Time     `json:"start"`
	Succeeded      int           `json:"succeeded"`
	Failed         int           `json:"failed"`
	Other          int           `json:"other"` // unrecorded, superseded, already deployed
	LeadTimeMedian time.Duration `json:"leadTimeMedianNs"`
}

const day = 24 * time.Hour

// Compute returns the metrics of each environment with deployments or runs in the window, sorted by
// name.
func Compute(deps []Deployment, o Options) []Env {
	if o.Until.IsZero() {
		o.Until = time.Now()
	}
	byEnv := map[string][]Deployment{}
	for _, d := range deps {
		if (o.Env == "" || d.Env == o.Env) && !d.Time.Before(o.Since) && d.Time.Before(o.Until) {
			byEnv[d.Env] = append(byEnv[d.Env], d)
		}
	}
	for _, r := range o.Runs {
		if _, seen := byEnv[r.Env]; !seen && (o.Env == "" || r.Env == o.Env) && !r.Started.Before(o.Since) && r.Started.Before(o.Until) {
			byEnv[r.Env] = nil
		}
	}
	var out []Env
	for env, ds := range byEnv {
		out = append(out, compute(env, ds, deps, o))
	}
	if len(out) == 0 && o.Env != "" {
		out = append(out, compute(o.Env, nil, deps, o))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Env < out[j].Env })
	return out
}

func compute(env string, ds []Deployment, all []Deployment, o Options) Env {
	e := Env{Env: env, Deployments: len(ds)}
	days := o.Until.Sub(o.Since).Hours() / 24
	if days > 0 {
		e.PerDay = float64(len(ds)) / days
		e.PerWeek = e.PerDay * 7
	}
	var leads, restores []time.Duration
	went, ok, runs := 0, 0, 0
	weeks := map[time.Time]*Week{}
	weekOf := func(t time.Time) *Week {
		y, m, d := t.UTC().Date()
		start := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		start = start.AddDate(0, 0, -((int(start.Weekday()) + 6) % 7)) // Monday
		if weeks[start] == nil {
			weeks[start] = &Week{Start: start}
		}
		return weeks[start]
	}
	weekLeads := map[time.Time][]time.Duration{}
	for _, d := range ds {
		w := weekOf(d.Time)
		r := d.Record
		if r == nil {
			e.Unrecorded++
			w.Other++
			continue
		}
		failed := r.ChangeFailed || r.RolledBack
		switch {
		case r.Result == "superseded":
			e.Superseded++
			w.Other++
			continue
		case r.Result == "already deployed":
			ok++
			runs++
			w.Other++
			continue
		case failed:
			e.ChangeFailures++
			w.Failed++
			if r.CanaryAborted {
				e.CaughtByCanary++
			}
		case r.Result == "succeeded":
			e.Succeeded++
			w.Succeeded++
		default:
			w.Other++
		}
		runs++
		if r.Result == "succeeded" {
			ok++
		}
		if r.Result == "succeeded" || failed {
			went++
		}
		if r.RolledBack {
			e.RolledBack++
		}
		if r.Healthy != nil && d.SourceCommitTime != nil && r.Result == "succeeded" {
			lt := r.Healthy.Sub(*d.SourceCommitTime)
			leads = append(leads, lt)
			weekLeads[w.Start] = append(weekLeads[w.Start], lt)
		}
		if failed && r.FailedAt != nil {
			if r.Restored != nil {
				restores = append(restores, r.Restored.Sub(*r.FailedAt))
			} else if next := nextHealthy(all, d); next != nil {
				restores = append(restores, next.Sub(*r.FailedAt))
			}
		}
	}
	e.LeadTimes, e.Restores = len(leads), len(restores)
	e.LeadTimeMedian, e.LeadTimeP90 = percentile(leads, 0.5), percentile(leads, 0.9)
	e.TimeToRestoreMedian = percentile(restores, 0.5)
	if went > 0 {
		e.ChangeFailureRate = float64(e.ChangeFailures) / float64(went)
	}
	for _, r := range o.Runs {
		if r.Env != env || r.Started.Before(o.Since) || !r.Started.Before(o.Until) || r.Result == "superseded" || r.Result == "dry run" {
			continue
		}
		e.Runs++
		runs++
		if r.Result == "succeeded" || r.Result == "already deployed" {
			ok++
		}
	}
	if runs > 0 {
		e.PipelineSuccessRate = float64(ok) / float64(runs)
	}
	e.Bands.DeploymentFrequency = BandFrequency(e.PerDay)
	if len(leads) > 0 {
		e.Bands.LeadTime = BandLeadTime(e.LeadTimeMedian)
	}
	if went > 0 {
		e.Bands.ChangeFailureRate = BandChangeFailureRate(e.ChangeFailureRate)
	}
	if len(restores) > 0 {
		e.Bands.TimeToRestore = BandTimeToRestore(e.TimeToRestoreMedian)
	}
	for start, w := range weeks {
		w.LeadTimeMedian = percentile(weekLeads[start], 0.5)
		e.Weeks = append(e.Weeks, *w)
	}
	sort.Slice(e.Weeks, func(i, j int) bool { return e.Weeks[i].Start.Before(e.Weeks[j].Start) })
	return e
}

// nextHealthy is when the environment was next Healthy after d failed: the next deployment that
// became Healthy.
func nextHealthy(all []Deployment, d Deployment) *time.Time {
	for _, n := range all {
		if n.Env == d.Env && n.Time.After(d.Time) && n.Record != nil && n.Record.Healthy != nil {
			return n.Record.Healthy
		}
	}
	return nil
}

// percentile is the nearest-rank percentile (0 when there is no data).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p*float64(len(s)) + 0.999999)
	return s[min(max(rank, 1), len(s))-1]
}

// DORA performance bands (Accelerate State of DevOps Report 2023 clusters).
const (
	Elite  = "elite"
	High   = "high"
	Medium = "medium"
	Low    = "low"
)

// BandFrequency: elite on demand (at least daily), high between daily and weekly, medium between
// weekly and monthly, low less often.
func BandFrequency(perDay float64) string {
	switch {
	case perDay >= 1:
		return Elite
	case perDay >= 1.0/7:
		return High
	case perDay >= 1.0/30:
		return Medium
	}
	return Low
}

// BandLeadTime: elite under a day, high under a week, medium under a month, low longer.
func BandLeadTime(d time.Duration) string {
	switch {
	case d < day:
		return Elite
	case d < 7*day:
		return High
	case d < 30*day:
		return Medium
	}
	return Low
}

// BandChangeFailureRate: the clusters' rates are 5%, 10%, 15% and 64%: elite up to 5%, high up to
// 10%, medium up to 15%, low above.
func BandChangeFailureRate(r float64) string {
	switch {
	case r <= 0.05:
		return Elite
	case r <= 0.10:
		return High
	case r <= 0.15:
		return Medium
	}
	return Low
}

// BandTimeToRestore: elite under an hour, high under a day, medium under a week, low longer.
func BandTimeToRestore(d time.Duration) string {
	switch {
	case d < time.Hour:
		return Elite
	case d < day:
		return High
	case d < 7*day:
		return Medium
	}
	return Low
}

// Markdown renders the metrics as a table per environment.
func Markdown(envs []Env, o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Delivery metrics, %s → %s\n\n", o.Since.UTC().Format("2006-01-02"), o.Until.UTC().Format("2006-01-02"))
	if len(envs) == 0 {
		b.WriteString("No deployment in this window.\n")
	}
	for _, e := range envs {
		fmt.Fprintf(&b, "### %s\n\n| metric | value | DORA band |\n|---|---|---|\n", e.Env)
		fmt.Fprintf(&b, "| deployment frequency | %.2f per day, %.1f per week (%d deployments) | %s |\n", e.PerDay, e.PerWeek, e.Deployments, e.Bands.DeploymentFrequency)
		fmt.Fprintf(&b, "| lead time for changes | median %s, p90 %s (%d) | %s |\n", human(e.LeadTimeMedian), human(e.LeadTimeP90), e.LeadTimes, dash(e.Bands.LeadTime))
		fmt.Fprintf(&b, "| change failure rate | %.1f%% (%d of %d%s) | %s |\n", 100*e.ChangeFailureRate, e.ChangeFailures, e.ChangeFailures+e.Succeeded, caught(e.CaughtByCanary), dash(e.Bands.ChangeFailureRate))
		fmt.Fprintf(&b, "| time to restore | median %s (%d) | %s |\n", human(e.TimeToRestoreMedian), e.Restores, dash(e.Bands.TimeToRestore))
		fmt.Fprintf(&b, "| pipeline success rate | %.1f%% | |\n\n", 100*e.PipelineSuccessRate)
		if e.Unrecorded > 0 {
			fmt.Fprintf(&b, "%d deployments were made before deployment records: they count for the frequency only.\n\n", e.Unrecorded)
		}
	}
	return b.String()
}

// CSV renders one line per environment.
func CSV(envs []Env) string {
	var b strings.Builder
	b.WriteString("env,deployments,unrecorded,per_day,per_week,lead_time_median_s,lead_time_p90_s,change_failure_rate,time_to_restore_median_s,pipeline_success_rate,band_frequency,band_lead_time,band_change_failure_rate,band_time_to_restore\n")
	for _, e := range envs {
		fmt.Fprintf(&b, "%s,%d,%d,%.4f,%.4f,%.0f,%.0f,%.4f,%.0f,%.4f,%s,%s,%s,%s\n", e.Env, e.Deployments, e.Unrecorded, e.PerDay, e.PerWeek,
			e.LeadTimeMedian.Seconds(), e.LeadTimeP90.Seconds(), e.ChangeFailureRate, e.TimeToRestoreMedian.Seconds(), e.PipelineSuccessRate,
			e.Bands.DeploymentFrequency, e.Bands.LeadTime, e.Bands.ChangeFailureRate, e.Bands.TimeToRestore)
	}
	return b.String()
}

// JSON renders the metrics.
func JSON(envs []Env) string {
	b, _ := json.MarshalIndent(envs, "", "  ")
	return string(b)
}

func human(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d >= day:
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%.1fh", d.Hours())
	}
	return d.Round(time.Second).String()
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// Collect reads the branch's history (commits only) and the deployment notes and computes the
// metrics; maxCommits bounds the history read (default 10,000).
func Collect(ctx context.Context, g git.Options, o Options, maxCommits int) ([]Env, error) {
	if maxCommits <= 0 {
		maxCommits = 10_000
	}
	ctx, span := telemetry.Start(ctx, "metrics.collect", telemetry.Attr("metrics.env", o.Env))
	history, err := git.History(ctx, g, maxCommits)
	if err != nil {
		telemetry.End(span, err)
		return nil, fmt.Errorf("metrics: %w", err)
	}
	notes, err := git.ReadNotes(ctx, g, git.NotesRef)
	if err != nil {
		telemetry.End(span, err)
		return nil, fmt.Errorf("metrics: %w", err)
	}
	runNotes, err := git.ReadNotes(ctx, g, git.RunsRef)
	if err != nil {
		telemetry.End(span, err)
		return nil, fmt.Errorf("metrics: %w", err)
	}
	o.Runs = append(o.Runs, record.ReadRuns(runNotes)...)
	span.SetAttributes(attribute.Int("metrics.commits", len(history)), attribute.Int("metrics.notes", len(notes)))
	telemetry.End(span, nil)
	return Compute(Deployments(history, notes), o), nil
}

// ParseSince reads a window start: "30d", "12h", "2w", or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if n := len(s); n > 1 {
		var v int
		if _, err := fmt.Sscanf(s[:n-1], "%d", &v); err == nil && v > 0 && fmt.Sprint(v) == s[:n-1] {
			switch s[n-1] {
			case 'h':
				return now.Add(-time.Duration(v) * time.Hour), nil
			case 'd':
				return now.AddDate(0, 0, -v), nil
			case 'w':
				return now.AddDate(0, 0, -7*v), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("metrics: %q: want a duration like 30d, 12h, 2w, or an RFC 3339 time", s)
}

// caught says how many change failures a canary caught before full exposure ("" for none).
func caught(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d caught by the canary before full exposure", n)
}

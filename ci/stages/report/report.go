// Package report is the run report of a deployment: each stage's status, timing and key output, the
// overall result and the DORA figures, rendered as JSON, Markdown, plain text and HTML. It holds no
// secrets: stages put only references, digests, SHAs and statuses in it.
package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"maps"
	"slices"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Stage statuses.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Skipped   = "skipped"
)

// Results of a run besides Succeeded and Failed.
const (
	// Superseded: a newer commit replaced our values before they ran (neither success nor failure).
	Superseded = "superseded"
	// AlreadyDeployed: nothing had to change; the values already run, Synced and Healthy.
	AlreadyDeployed = "already deployed"
	// DryRun: nothing was pushed; the report says what would have been.
	DryRun = "dry run"
	// Paused: the canary stopped at its first pause on purpose (--canary-steps manual); the reason
	// says where; promote-canary or abort-canary carries on.
	Paused = "paused"
	// MailTest: a test message of the mail settings, no run.
	MailTest = "mail test"
	// NotOurs: the deployment failed, but not because of our change (another commit's object
	// failed in the same sync); nothing was rolled back and it is no change failure.
	NotOurs = "failed (not ours)"
)

// Stage is one stage of the run.
type Stage struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"`
	Start    time.Time         `json:"start"`
	Duration time.Duration     `json:"durationNs"`
	Output   map[string]string `json:"output,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// DORA are the delivery metrics of the run.
type DORA struct {
	SourceCommitTime   *time.Time    `json:"sourceCommitTime,omitempty"`
	LeadTime           time.Duration `json:"leadTimeNs,omitempty"` // source commit → Healthy
	DeploymentDuration time.Duration `json:"deploymentDurationNs"`
	Failed             bool          `json:"changeFailed"`
	RolledBack         bool          `json:"rolledBack"`
	TimeToRestore      time.Duration `json:"timeToRestoreNs,omitempty"` // failure detected → Healthy again
	// CanaryAborted: the change failed at a canary or blue-green step and was aborted before it
	// reached everyone (a change failure caught before full exposure).
	CanaryAborted bool `json:"canaryAborted,omitempty"`
}

// Run is the report of one run.
type Run struct {
	Title  string `json:"title"`
	Env    string `json:"environment,omitempty"`
	Result string `json:"result"` // succeeded, failed, superseded, already deployed or dry run
	// Reason explains a result other than succeeded (who superseded us, why it failed).
	Reason  string            `json:"reason,omitempty"`
	Started time.Time         `json:"started"`
	Ended   time.Time         `json:"ended"`
	Stages  []Stage           `json:"stages"`
	DORA    DORA              `json:"dora"`
	Links   map[string]string `json:"links,omitempty"`
	// Responses are the first bytes of the last failed response of each verification URL: in the
	// report (printed, mailed), never in stage outputs, notes, webhooks or traces.
	Responses map[string]string `json:"responses,omitempty"`
}

// Respond records a failed response's excerpt for url.
func (r *Run) Respond(url, excerpt string) {
	if r.Responses == nil {
		r.Responses = map[string]string{}
	}
	r.Responses[url] = excerpt
}

// responses renders the failed responses' excerpts, one line each.
func (r *Run) responses() []string {
	var out []string
	for _, u := range slices.Sorted(maps.Keys(r.Responses)) {
		out = append(out, fmt.Sprintf("last failed response of %s: %q", u, r.Responses[u]))
	}
	return out
}

// New starts a report.
func New(title, env string) *Run {
	return &Run{Title: title, Env: env, Started: time.Now(), Result: Succeeded}
}

// Begin starts a stage; the returned function ends it with its output and error (nil: succeeded).
func (r *Run) Begin(name string) func(output map[string]string, err error) {
	_, end := r.Start(context.Background(), name)
	return end
}

// Start starts a stage and its span (under ctx's span); the returned function ends both, with the
// stage's output as the span's attributes. The stage's duration is the span's.
func (r *Run) Start(ctx context.Context, name string) (context.Context, func(output map[string]string, err error)) {
	start := time.Now()
	ctx, span := telemetry.Start(ctx, name, telemetry.Attr("wanderlust.environment", r.Env))
	return ctx, func(output map[string]string, err error) {
		s := Stage{Name: name, Status: Succeeded, Start: start, Duration: time.Since(start), Output: output}
		if err != nil {
			s.Status, s.Error = Failed, err.Error()
		}
		for _, k := range slices.Sorted(maps.Keys(output)) {
			span.SetAttributes(telemetry.Attr("wanderlust."+k, output[k]))
		}
		telemetry.End(span, err)
		r.Stages = append(r.Stages, s)
	}
}

// Skip records a stage that did not run, and why.
func (r *Run) Skip(name, why string) {
	r.Stages = append(r.Stages, Stage{Name: name, Status: Skipped, Start: time.Now(), Output: map[string]string{"reason": why}})
}

// Finish sets the result (failed when err is non-nil) and the end time.
func (r *Run) Finish(err error) {
	r.Ended = time.Now()
	r.DORA.DeploymentDuration = r.Ended.Sub(r.Started)
	if err != nil {
		if r.Result != NotOurs {
			r.Result = Failed
		}
		if r.Reason == "" {
			r.Reason = err.Error()
		}
	}
}

// Failure reports whether a result is a failure (ours or not).
func Failure(result string) bool { return result == Failed || result == NotOurs }

// Outcome sets a result other than succeeded or failed, and why.
func (r *Run) Outcome(result, reason string) { r.Result, r.Reason = result, reason }

// Parse reads a report rendered by JSON; anything else (no title or no result) is refused.
func Parse(b []byte) (*Run, error) {
	r := &Run{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("not a run report in JSON (deploy --report-format json): %w", err)
	}
	if r.Title == "" || r.Result == "" {
		return nil, errors.New("not a run report in JSON (deploy --report-format json): no title or result")
	}
	return r, nil
}

// JSON renders the report.
func (r *Run) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}

// Text renders the report as plain text.
func (r *Run) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", r.Title, strings.ToUpper(r.Result))
	if r.Reason != "" && !Failure(r.Result) {
		fmt.Fprintf(&b, "%s\n", r.Reason)
	}
	if r.Env != "" {
		fmt.Fprintf(&b, "environment: %s\n", r.Env)
	}
	fmt.Fprintf(&b, "started %s, took %s\n\n", r.Started.UTC().Format(time.RFC3339), r.DORA.DeploymentDuration.Round(time.Millisecond))
	for _, s := range r.Stages {
		fmt.Fprintf(&b, "- %-8s %-10s %8s", s.Name, s.Status, s.Duration.Round(time.Millisecond))
		for _, k := range slices.Sorted(maps.Keys(s.Output)) {
			fmt.Fprintf(&b, "  %s=%s", k, s.Output[k])
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "\n    error: %s", s.Error)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n" + r.doraText(": ", "\n"))
	for _, l := range r.responses() {
		b.WriteString(l + "\n")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Links)) {
		fmt.Fprintf(&b, "%s: %s\n", k, r.Links[k])
	}
	return b.String()
}

// Markdown renders the report for $GITHUB_STEP_SUMMARY.
func (r *Run) Markdown() string {
	var b strings.Builder
	icon := map[string]string{Failed: "❌", NotOurs: "❌", Superseded: "⏭️", DryRun: "📝", Paused: "⏸️"}[r.Result]
	if icon == "" {
		icon = "✅"
	}
	fmt.Fprintf(&b, "## %s %s: %s\n\n", icon, r.Title, r.Result)
	if r.Reason != "" && !Failure(r.Result) {
		fmt.Fprintf(&b, "%s\n\n", r.Reason)
	}
	b.WriteString("| stage | status | duration | output |\n|---|---|---:|---|\n")
	for _, s := range r.Stages {
		out := s.outputs(func(k, v string) string { return fmt.Sprintf("%s=`%s`", k, v) }, func(e string) string { return "error: " + e })
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s.Name, s.Status, s.Duration.Round(time.Millisecond), strings.ReplaceAll(strings.Join(out, " "), "|", `\|`))
	}
	b.WriteString("\n" + r.doraText(": ", "  \n"))
	for _, l := range r.responses() {
		b.WriteString("\n" + l + "  ")
	}
	return b.String()
}

// HTML renders the report for email.
func (r *Run) HTML() string {
	var b strings.Builder
	color := "#1a7f37"
	if Failure(r.Result) {
		color = "#cf222e"
	}
	fmt.Fprintf(&b, `<html><body style="font-family:sans-serif"><h2 style="color:%s">%s: %s</h2>`, color, html.EscapeString(r.Title), strings.ToUpper(r.Result))
	b.WriteString(`<table border="1" cellpadding="4" cellspacing="0"><tr><th>stage</th><th>status</th><th>duration</th><th>output</th></tr>`)
	for _, s := range r.Stages {
		out := s.outputs(func(k, v string) string { return html.EscapeString(k + "=" + v) }, func(e string) string { return "<b>error:</b> " + html.EscapeString(e) })
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", html.EscapeString(s.Name), s.Status, s.Duration.Round(time.Millisecond), strings.Join(out, "<br>"))
	}
	b.WriteString("</table><p>" + strings.ReplaceAll(html.EscapeString(r.doraText(": ", "\n")), "\n", "<br>") + "</p>")
	for _, l := range r.responses() {
		b.WriteString("<p>" + html.EscapeString(l) + "</p>")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Links)) {
		fmt.Fprintf(&b, `<p><a href="%s">%s</a></p>`, html.EscapeString(r.Links[k]), html.EscapeString(k))
	}
	b.WriteString("</body></html>")
	return b.String()
}

// outputs renders a stage's outputs (sorted by key) and its error, for the table formats.
func (s Stage) outputs(kv func(k, v string) string, errf func(e string) string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.Output)) {
		out = append(out, kv(k, s.Output[k]))
	}
	if s.Error != "" {
		out = append(out, errf(s.Error))
	}
	return out
}

func (r *Run) doraText(sep, nl string) string {
	d := r.DORA
	var lines []string
	if d.SourceCommitTime != nil {
		lines = append(lines, "source commit time"+sep+d.SourceCommitTime.UTC().Format(time.RFC3339))
	}
	if d.LeadTime > 0 {
		lines = append(lines, "lead time (commit → Healthy)"+sep+d.LeadTime.Round(time.Second).String())
	}
	lines = append(lines, "deployment duration"+sep+d.DeploymentDuration.Round(time.Millisecond).String(),
		fmt.Sprintf("change failed%s%v", sep, d.Failed), fmt.Sprintf("rolled back%s%v", sep, d.RolledBack))
	if d.CanaryAborted {
		lines = append(lines, "caught by the canary (aborted before full exposure)"+sep+"true")
	}
	if d.TimeToRestore > 0 {
		lines = append(lines, "time to restore"+sep+d.TimeToRestore.Round(time.Millisecond).String())
	}
	return strings.Join(lines, nl) + nl
}

package findings

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SARIFDoc is one tool's SARIF log and the category its runs get in the merged log (GitHub code
// scanning refuses two runs of one tool under one category).
type SARIFDoc struct {
	Category string
	Data     []byte
}

// MergeSARIF concatenates the runs of SARIF 2.1.0 logs into one log, passing each run through
// untouched except for automationDetails.id, set to "<category>/" where a run has none.
func MergeSARIF(docs ...SARIFDoc) ([]byte, error) {
	type log struct {
		Schema  string            `json:"$schema,omitempty"`
		Version string            `json:"version"`
		Runs    []json.RawMessage `json:"runs"`
	}
	out := log{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []json.RawMessage{}}
	for _, d := range docs {
		var l log
		if err := json.Unmarshal(d.Data, &l); err != nil {
			return nil, fmt.Errorf("sarif %s: %w", d.Category, err)
		}
		if l.Version != "2.1.0" {
			return nil, fmt.Errorf("sarif %s: version %q, want 2.1.0", d.Category, l.Version)
		}
		for _, raw := range l.Runs {
			var run map[string]json.RawMessage
			if err := json.Unmarshal(raw, &run); err != nil {
				return nil, fmt.Errorf("sarif %s: run: %w", d.Category, err)
			}
			if _, ok := run["automationDetails"]; !ok && d.Category != "" {
				run["automationDetails"], _ = json.Marshal(map[string]string{"id": d.Category + "/"})
			}
			b, err := json.Marshal(run)
			if err != nil {
				return nil, err
			}
			out.Runs = append(out.Runs, b)
		}
	}
	return json.MarshalIndent(out, "", "  ")
}

// Markdown summarises a scan for $GITHUB_STEP_SUMMARY and the run report: the verdict and why,
// counts per tool, the blocking findings, the quality gate, and what the allow list let through.
func Markdown(v Verdict, gate *QualityGate, skipped []string) string {
	var b strings.Builder
	if v.Pass {
		b.WriteString("## Security scan: ✅ passed\n\n")
	} else {
		b.WriteString("## Security scan: ❌ failed\n\n")
	}
	b.WriteString("| tool | critical | high | medium | low | unknown |\n|---|---:|---:|---:|---:|---:|\n")
	for _, tool := range slices.Sorted(maps.Keys(v.Counts)) {
		c := v.Counts[tool]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", tool, c["CRITICAL"], c["HIGH"], c["MEDIUM"], c["LOW"], c["UNKNOWN"])
	}
	if len(v.Counts) == 0 {
		b.WriteString("| (no findings) | 0 | 0 | 0 | 0 | 0 |\n")
	}
	for _, s := range skipped {
		fmt.Fprintf(&b, "\n> %s\n", cell(s))
	}
	if len(v.Blocking) > 0 {
		b.WriteString("\n### Blocking findings\n")
		for _, tool := range slices.Sorted(maps.Keys(v.Blocking)) {
			fmt.Fprintf(&b, "\n#### %s\n\n| severity | id | where | title |\n|---|---|---|---|\n", tool)
			for _, f := range v.Blocking[tool] {
				id := f.ID
				if f.URL != "" {
					id = "[" + f.ID + "](" + f.URL + ")"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Severity, cell(id), cell(f.Where()), cell(f.Title))
			}
		}
	}
	if gate != nil {
		fmt.Fprintf(&b, "\n### SonarQube quality gate: %s\n", gate.Status)
		if gate.URL != "" {
			fmt.Fprintf(&b, "\n[dashboard](%s)\n", gate.URL)
		}
		if len(gate.Conditions) > 0 {
			b.WriteString("\n| status | metric | actual | threshold |\n|---|---|---|---|\n")
			for _, c := range gate.Conditions {
				fmt.Fprintf(&b, "| %s | %s | %s | %s %s |\n", c.Status, cell(c.MetricKey), cell(c.ActualValue), c.Comparator, cell(c.ErrorThreshold))
			}
		}
	}
	if len(v.Allowed) > 0 {
		b.WriteString("\n### Allowed by policy\n\n")
		for _, f := range v.Allowed {
			fmt.Fprintf(&b, "- %s %s (%s)\n", f.Severity, f.ID, cell(f.Where()))
		}
	}
	return b.String()
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

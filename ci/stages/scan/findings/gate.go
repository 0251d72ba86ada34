package findings

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Policy decides whether findings fail the build.
type Policy struct {
	// FailOn fails the gate on any finding at or above this severity (default High). Unknown
	// disables the severity rule.
	FailOn Severity
	// MaxCVSS fails the gate on a Dependency-Check finding with a CVSS score at or above it
	// (Dependency-Check's failBuildOnCVSS); 0 disables the rule.
	MaxCVSS float64
	// FailOnQualityGate fails the gate when SonarQube's quality gate is ERROR.
	FailOnQualityGate bool
	// Allow lists finding IDs (CVE-…, DS-0001, rule IDs) that never fail the gate.
	Allow []string
}

// DefaultPolicy fails on HIGH and above, on CVSS ≥ 7 from Dependency-Check, and on a failed quality gate.
func DefaultPolicy() Policy {
	return Policy{FailOn: High, MaxCVSS: 7, FailOnQualityGate: true}
}

// QualityGate is SonarQube's verdict on an analysis.
type QualityGate struct {
	Status     string      `json:"status"` // OK, WARN, ERROR or NONE
	Conditions []Condition `json:"conditions,omitempty"`
	URL        string      `json:"url,omitempty"` // the project's dashboard
}

// Condition is one quality-gate condition.
type Condition struct {
	Status         string `json:"status"`
	MetricKey      string `json:"metricKey"`
	Comparator     string `json:"comparator"`
	ErrorThreshold string `json:"errorThreshold"`
	ActualValue    string `json:"actualValue"`
}

// Verdict is the gate's decision and its reasons.
type Verdict struct {
	Pass bool `json:"pass"`
	// Blocking are the findings that failed the gate, grouped by tool.
	Blocking map[string][]Finding `json:"blocking,omitempty"`
	// GateFailed says the quality gate failed the build.
	GateFailed bool `json:"qualityGateFailed,omitempty"`
	// Allowed are findings that would have failed the gate but are on the allow list.
	Allowed []Finding `json:"allowed,omitempty"`
	// Counts are all findings by tool and severity name.
	Counts map[string]map[string]int `json:"counts"`
}

// Evaluate applies the policy to the findings and the quality gate (nil when SonarQube did not run).
func Evaluate(fs []Finding, gate *QualityGate, p Policy) Verdict {
	allow := map[string]bool{}
	for _, id := range p.Allow {
		allow[strings.TrimSpace(id)] = true
	}
	v := Verdict{Pass: true, Blocking: map[string][]Finding{}, Counts: map[string]map[string]int{}}
	for _, f := range fs {
		if v.Counts[f.Tool] == nil {
			v.Counts[f.Tool] = map[string]int{}
		}
		v.Counts[f.Tool][f.Severity.String()]++
		blocks := (p.FailOn != Unknown && f.Severity >= p.FailOn) ||
			(p.MaxCVSS > 0 && f.Tool == "dependency-check" && f.CVSS >= p.MaxCVSS)
		switch {
		case !blocks:
		case allow[f.ID]:
			v.Allowed = append(v.Allowed, f)
		default:
			v.Blocking[f.Tool] = append(v.Blocking[f.Tool], f)
			v.Pass = false
		}
	}
	for tool := range v.Blocking {
		sortFindings(v.Blocking[tool])
	}
	if gate != nil && p.FailOnQualityGate && gate.Status == "ERROR" {
		v.GateFailed, v.Pass = true, false
	}
	return v
}

// Reason is a one-paragraph explanation of a failed verdict ("" when it passed).
func (v Verdict) Reason() string {
	if v.Pass {
		return ""
	}
	var parts []string
	for _, tool := range slices.Sorted(maps.Keys(v.Blocking)) {
		fs := v.Blocking[tool]
		ids := make([]string, 0, len(fs))
		for _, f := range fs {
			ids = append(ids, fmt.Sprintf("%s %s (%s)", f.Severity, f.ID, f.Where()))
		}
		parts = append(parts, fmt.Sprintf("%s: %d blocking: %s", tool, len(fs), strings.Join(ids, "; ")))
	}
	if v.GateFailed {
		parts = append(parts, "sonarqube: quality gate ERROR")
	}
	return "scan gate failed: " + strings.Join(parts, " | ")
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Severity != fs[j].Severity {
			return fs[i].Severity > fs[j].Severity
		}
		return fs[i].ID < fs[j].ID
	})
}

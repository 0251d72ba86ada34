// Package findings is the scanners' common ground: one finding model for Trivy, OWASP
// Dependency-Check and SonarQube, the parsers of their reports, the gate policy that decides
// pass/fail and says why, a merged SARIF 2.1.0 log and a Markdown summary. It needs no container.
package findings

import (
	"fmt"
	"strings"
)

// Severity orders findings. The zero value is Unknown.
type Severity int

// Severities, lowest first.
const (
	Unknown Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "UNKNOWN"
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name in any case ("high", "HIGH", "Critical"; "moderate" is Medium).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "CRITICAL":
		return Critical, nil
	case "HIGH":
		return High, nil
	case "MEDIUM", "MODERATE":
		return Medium, nil
	case "LOW":
		return Low, nil
	case "UNKNOWN", "INFO", "NONE", "":
		return Unknown, nil
	}
	return Unknown, fmt.Errorf("unknown severity %q (want LOW, MEDIUM, HIGH or CRITICAL)", s)
}

// severityOf is ParseSeverity for report fields: an unknown word counts as Unknown.
func severityOf(s string) Severity {
	v, _ := ParseSeverity(s)
	return v
}

// FromCVSS maps a CVSS v3 base score to its qualitative severity.
func FromCVSS(score float64) Severity {
	switch {
	case score >= 9:
		return Critical
	case score >= 7:
		return High
	case score >= 4:
		return Medium
	case score > 0:
		return Low
	}
	return Unknown
}

// Kind says what a finding is about.
type Kind string

// Kinds of findings.
const (
	Vulnerability Kind = "vulnerability"
	Secret        Kind = "secret"
	Misconfig     Kind = "misconfiguration"
)

// Finding is one problem reported by one tool.
type Finding struct {
	Tool      string   `json:"tool"`           // "trivy", "dependency-check", "sonarqube"
	ID        string   `json:"id"`             // CVE-…, GHSA-…, DS-0001, aws-secret-access-key
	Kind      Kind     `json:"kind"`           // vulnerability, secret, misconfiguration
	Severity  Severity `json:"-"`              // see SeverityName
	CVSS      float64  `json:"cvss,omitempty"` // highest CVSS score given, if any
	Package   string   `json:"package,omitempty"`
	File      string   `json:"file,omitempty"` // the target: lock file, Dockerfile, manifest, image
	Line      int      `json:"line,omitempty"`
	Installed string   `json:"installed,omitempty"`
	Fixed     string   `json:"fixed,omitempty"`
	Title     string   `json:"title"`
	URL       string   `json:"url,omitempty"`
}

// SeverityName is the severity as text, for JSON and reports.
func (f Finding) SeverityName() string { return f.Severity.String() }

// Where is the package or file a finding is about, for one-line listings.
func (f Finding) Where() string {
	switch {
	case f.Package != "" && f.Installed != "":
		s := f.Package + " " + f.Installed
		if f.Fixed != "" {
			s += " → " + f.Fixed
		} else {
			s += " (no fix)"
		}
		return s + " in " + f.File
	case f.Line > 0:
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return f.File
}

package findings

import (
	"encoding/json"
	"fmt"
	"strings"
)

// trivyReport is the part of Trivy's JSON report (schema version 2) that we read.
type trivyReport struct {
	SchemaVersion int    `json:"SchemaVersion"`
	ArtifactName  string `json:"ArtifactName"`
	Results       []struct {
		Target          string `json:"Target"`
		Class           string `json:"Class"`
		Vulnerabilities []struct {
			VulnerabilityID  string `json:"VulnerabilityID"`
			PkgName          string `json:"PkgName"`
			InstalledVersion string `json:"InstalledVersion"`
			FixedVersion     string `json:"FixedVersion"`
			Severity         string `json:"Severity"`
			Title            string `json:"Title"`
			PrimaryURL       string `json:"PrimaryURL"`
			CVSS             map[string]struct {
				V3Score float64 `json:"V3Score"`
				V2Score float64 `json:"V2Score"`
			} `json:"CVSS"`
		} `json:"Vulnerabilities"`
		Misconfigurations []struct {
			ID            string `json:"ID"`
			Title         string `json:"Title"`
			Message       string `json:"Message"`
			Severity      string `json:"Severity"`
			Status        string `json:"Status"`
			PrimaryURL    string `json:"PrimaryURL"`
			CauseMetadata struct {
				StartLine int `json:"StartLine"`
			} `json:"CauseMetadata"`
		} `json:"Misconfigurations"`
		Secrets []struct {
			RuleID    string `json:"RuleID"`
			Severity  string `json:"Severity"`
			Title     string `json:"Title"`
			StartLine int    `json:"StartLine"`
		} `json:"Secrets"`
	} `json:"Results"`
}

// ParseTrivy reads a Trivy JSON report (fs, image or config scan). Misconfigurations that passed are
// skipped; secrets are reported without their (already masked) match.
func ParseTrivy(b []byte) ([]Finding, error) {
	var r trivyReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("trivy report: %w", err)
	}
	if r.SchemaVersion != 2 {
		return nil, fmt.Errorf("trivy report: schema version %d, want 2", r.SchemaVersion)
	}
	var out []Finding
	for _, res := range r.Results {
		for _, v := range res.Vulnerabilities {
			f := Finding{
				Tool: "trivy", ID: v.VulnerabilityID, Kind: Vulnerability, Severity: severityOf(v.Severity),
				Package: v.PkgName, File: res.Target, Installed: v.InstalledVersion, Fixed: v.FixedVersion,
				Title: v.Title, URL: v.PrimaryURL,
			}
			for _, c := range v.CVSS {
				f.CVSS = max(f.CVSS, c.V3Score, c.V2Score)
			}
			out = append(out, f)
		}
		for _, m := range res.Misconfigurations {
			if strings.EqualFold(m.Status, "PASS") {
				continue
			}
			title := m.Title
			if m.Message != "" {
				title += ": " + m.Message
			}
			out = append(out, Finding{
				Tool: "trivy", ID: m.ID, Kind: Misconfig, Severity: severityOf(m.Severity),
				File: res.Target, Line: m.CauseMetadata.StartLine, Title: title, URL: m.PrimaryURL,
			})
		}
		for _, s := range res.Secrets {
			out = append(out, Finding{
				Tool: "trivy", ID: s.RuleID, Kind: Secret, Severity: severityOf(s.Severity),
				File: res.Target, Line: s.StartLine, Title: s.Title,
			})
		}
	}
	return out, nil
}

// odcReport is the part of OWASP Dependency-Check's JSON report (reportSchema 1.1) that we read.
type odcReport struct {
	ReportSchema string `json:"reportSchema"`
	Dependencies []struct {
		FileName string `json:"fileName"`
		FilePath string `json:"filePath"`
		Packages []struct {
			ID string `json:"id"`
		} `json:"packages"`
		Vulnerabilities []struct {
			Source   string `json:"source"`
			Name     string `json:"name"`
			Severity string `json:"severity"` // unscored severity, when there is no CVSS
			CVSSv2   *struct {
				Score    float64 `json:"score"`
				Severity string  `json:"severity"`
			} `json:"cvssv2"`
			CVSSv3 *struct {
				BaseScore    float64 `json:"baseScore"`
				BaseSeverity string  `json:"baseSeverity"`
			} `json:"cvssv3"`
			Description string `json:"description"`
			References  []struct {
				URL string `json:"url"`
			} `json:"references"`
		} `json:"vulnerabilities"`
	} `json:"dependencies"`
}

// ParseDependencyCheck reads an OWASP Dependency-Check JSON report. Severity comes from CVSS v3, else
// v2, else the unscored severity.
func ParseDependencyCheck(b []byte) ([]Finding, error) {
	var r odcReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("dependency-check report: %w", err)
	}
	if r.ReportSchema == "" {
		return nil, fmt.Errorf("dependency-check report: no reportSchema: not a Dependency-Check JSON report")
	}
	var out []Finding
	for _, d := range r.Dependencies {
		pkg, installed := d.FileName, ""
		if len(d.Packages) > 0 {
			pkg, installed = purlNameVersion(d.Packages[0].ID)
		}
		file, _, _ := strings.Cut(d.FilePath, "?")
		for _, v := range d.Vulnerabilities {
			f := Finding{
				Tool: "dependency-check", ID: v.Name, Kind: Vulnerability,
				Package: pkg, Installed: installed, File: file, Title: firstLine(v.Description),
			}
			switch {
			case v.CVSSv3 != nil:
				f.CVSS, f.Severity = v.CVSSv3.BaseScore, FromCVSS(v.CVSSv3.BaseScore)
			case v.CVSSv2 != nil:
				f.CVSS, f.Severity = v.CVSSv2.Score, severityOf(v.CVSSv2.Severity)
				if f.Severity == Unknown {
					f.Severity = FromCVSS(v.CVSSv2.Score)
				}
			default:
				f.Severity = severityOf(v.Severity)
			}
			if len(v.References) > 0 {
				f.URL = v.References[0].URL
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// purlNameVersion splits "pkg:npm/%40scope/name@1.2.3" into "@scope/name" and "1.2.3".
func purlNameVersion(purl string) (string, string) {
	s := strings.TrimPrefix(purl, "pkg:")
	if _, rest, ok := strings.Cut(s, "/"); ok {
		s = rest
	}
	s, _, _ = strings.Cut(s, "?")
	name, version, _ := strings.Cut(s, "@")
	if strings.HasPrefix(s, "%40") || strings.HasPrefix(s, "@") {
		// scoped npm package: the first @ belongs to the name
		trimmed := strings.TrimPrefix(strings.TrimPrefix(s, "%40"), "@")
		n, v, _ := strings.Cut(trimmed, "@")
		name, version = "@"+n, v
	}
	return strings.ReplaceAll(name, "%2F", "/"), version
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

package findings

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

// rawTrivy walks a Trivy JSON report generically (not through our parser) and returns every
// vulnerability, failed misconfiguration and secret as "kind id severity".
func rawTrivy(t *testing.T, b []byte) []string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	results, _ := doc["Results"].([]any)
	for _, r := range results {
		res := r.(map[string]any)
		for key, kind := range map[string]string{"Vulnerabilities": "vulnerability", "Misconfigurations": "misconfiguration", "Secrets": "secret"} {
			items, _ := res[key].([]any)
			for _, it := range items {
				m := it.(map[string]any)
				if m["Status"] == "PASS" {
					continue
				}
				id := m["VulnerabilityID"]
				if id == nil {
					id = m["ID"]
				}
				if id == nil {
					id = m["RuleID"]
				}
				out = append(out, kind+" "+id.(string)+" "+m["Severity"].(string))
			}
		}
	}
	sort.Strings(out)
	return out
}

func summarize(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Kind)+" "+f.ID+" "+f.Severity.String())
	}
	sort.Strings(out)
	return out
}

func TestParseTrivyRealReport(t *testing.T) {
	dir := fixtures.Trivy(t)
	raw := fixtures.Read(t, dir, "fs-all.json")
	fs, err := ParseTrivy(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summarize(fs), rawTrivy(t, raw); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("parsed findings differ from the report:\n got %v\nwant %v", got, want)
	}
	// The SARIF that the same Trivy run wrote has one result per finding.
	var sarif struct {
		Runs []struct {
			Results []any `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(fixtures.Read(t, dir, "fs-all.sarif"), &sarif); err != nil {
		t.Fatal(err)
	}
	if n := len(sarif.Runs[0].Results); n != len(fs) {
		t.Errorf("%d findings, Trivy's SARIF has %d results", len(fs), n)
	}
	var minimist, secret *Finding
	for i := range fs {
		switch {
		case fs[i].Package == "minimist":
			minimist = &fs[i]
		case fs[i].Kind == Secret && fs[i].ID == "github-pat":
			secret = &fs[i]
		}
	}
	if minimist == nil || minimist.Severity != Critical || minimist.Installed != "1.2.5" || minimist.Fixed != "1.2.6" ||
		minimist.File != "backend/package-lock.json" || minimist.ID != "CVE-2099-0002" || minimist.CVSS == 0 {
		t.Errorf("minimist = %+v", minimist)
	}
	if secret == nil || secret.File != "backend/.env.docker" || secret.Line != 4 || strings.Contains(secret.Title, "*") {
		t.Errorf("secret = %+v", secret)
	}
}

func TestParseTrivyCleanReport(t *testing.T) {
	fs, err := ParseTrivy(fixtures.Read(t, fixtures.Trivy(t), "fs-clean.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := Evaluate(fs, nil, DefaultPolicy())
	if len(fs) != 0 || !v.Pass || v.Reason() != "" {
		t.Errorf("clean report: %d findings, verdict %+v", len(fs), v)
	}
}

// TestGateAgreesWithTrivysOwnGate: fs-gate.json is what Trivy itself kept with --severity HIGH,CRITICAL
// (and exited 3 for); our gate at HIGH on the unfiltered vulnerability report must block exactly those.
func TestGateAgreesWithTrivysOwnGate(t *testing.T) {
	dir := fixtures.Trivy(t)
	all, err := ParseTrivy(fixtures.Read(t, dir, "fs-vuln.json"))
	if err != nil {
		t.Fatal(err)
	}
	trivyKept, err := ParseTrivy(fixtures.Read(t, dir, "fs-gate.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := Evaluate(all, nil, Policy{FailOn: High})
	if v.Pass || strings.Join(summarize(v.Blocking["trivy"]), ",") != strings.Join(summarize(trivyKept), ",") {
		t.Errorf("blocking %v, Trivy's gate kept %v", summarize(v.Blocking["trivy"]), summarize(trivyKept))
	}
	if !strings.Contains(v.Reason(), "CRITICAL CVE-2099-0002 (minimist 1.2.5 → 1.2.6 in backend/package-lock.json)") {
		t.Errorf("reason: %s", v.Reason())
	}

	// Critical only: minimist alone.
	v = Evaluate(all, nil, Policy{FailOn: Critical})
	if got := summarize(v.Blocking["trivy"]); len(got) != 1 || got[0] != "vulnerability CVE-2099-0002 CRITICAL" {
		t.Errorf("critical gate blocks %v", got)
	}
	// Allow-listing every blocking ID passes, and the allowed ones are reported.
	v = Evaluate(all, nil, Policy{FailOn: High, Allow: []string{"CVE-2099-0001", "CVE-2099-0002", " CVE-2099-0005"}})
	if !v.Pass || len(v.Allowed) != 3 {
		t.Errorf("allow list: %+v", v)
	}
}

func TestGateOnEverythingInTheRealReport(t *testing.T) {
	fs, _ := ParseTrivy(fixtures.Read(t, fixtures.Trivy(t), "fs-all.json"))
	v := Evaluate(fs, nil, DefaultPolicy())
	want := 0
	for _, f := range fs {
		if f.Severity >= High {
			want++
		}
	}
	if v.Pass || len(v.Blocking["trivy"]) != want || want == 0 {
		t.Errorf("blocking %d, want %d", len(v.Blocking["trivy"]), want)
	}
	// Worst first.
	if b := v.Blocking["trivy"]; b[0].Severity != Critical || b[len(b)-1].Severity != High {
		t.Errorf("blocking not sorted by severity: %v", summarize(b))
	}
	total := 0
	for _, n := range v.Counts["trivy"] {
		total += n
	}
	if total != len(fs) {
		t.Errorf("counts add up to %d, want %d", total, len(fs))
	}
}

func TestParseDependencyCheckDocumentedFormat(t *testing.T) {
	b, err := os.ReadFile("testdata/odc-documented-format.json")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := ParseDependencyCheck(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Finding{
		"CVE-2099-1001": {Severity: High, CVSS: 7.5, Package: "express", Installed: "4.17.1", File: "/src/backend/package-lock.json", Title: "Open redirect in a fixture package.", URL: "https://example.invalid/CVE-2099-1001"},
		"CVE-2099-1002": {Severity: Medium, CVSS: 5.0, Package: "express", Installed: "4.17.1", File: "/src/backend/package-lock.json", Title: "Only a CVSS v2 score."},
		"CVE-2099-1003": {Severity: Low, Package: "@babel/traverse", Installed: "7.22.0", File: "/src/frontend/package-lock.json", Title: "Unscored: severity only.", URL: "https://example.invalid/CVE-2099-1003"},
		"CVE-2099-1004": {Severity: Critical, CVSS: 9.8, Package: "@babel/traverse", Installed: "7.22.0", File: "/src/frontend/package-lock.json", Title: "Critical fixture."},
	}
	if len(fs) != len(want) {
		t.Fatalf("%d findings, want %d: %+v", len(fs), len(want), fs)
	}
	for _, f := range fs {
		w := want[f.ID]
		w.Tool, w.ID, w.Kind = "dependency-check", f.ID, Vulnerability
		if f != w {
			t.Errorf("%s:\n got %+v\nwant %+v", f.ID, f, w)
		}
	}
	// failBuildOnCVSS 7 blocks 7.5 and 9.8 even when the severity rule is off.
	v := Evaluate(fs, nil, Policy{MaxCVSS: 7})
	if got := summarize(v.Blocking["dependency-check"]); len(got) != 2 {
		t.Errorf("CVSS gate blocks %v", got)
	}
	if _, err := ParseDependencyCheck([]byte(`{"dependencies":[]}`)); err == nil {
		t.Error("a report without reportSchema was accepted")
	}
}

func TestQualityGate(t *testing.T) {
	gate := &QualityGate{Status: "ERROR", Conditions: []Condition{{Status: "ERROR", MetricKey: "new_coverage", Comparator: "LT", ErrorThreshold: "80", ActualValue: "41.2"}}}
	v := Evaluate(nil, gate, DefaultPolicy())
	if v.Pass || !v.GateFailed || !strings.Contains(v.Reason(), "quality gate ERROR") {
		t.Errorf("verdict %+v", v)
	}
	if v := Evaluate(nil, &QualityGate{Status: "WARN"}, DefaultPolicy()); !v.Pass {
		t.Error("WARN failed the gate")
	}
	if v := Evaluate(nil, gate, Policy{FailOn: High}); !v.Pass {
		t.Error("quality gate enforced though the policy does not ask for it")
	}
}

func TestMergeSARIFAndMarkdown(t *testing.T) {
	dir := fixtures.Trivy(t)
	trivySARIF := fixtures.Read(t, dir, "fs-all.sarif")
	odcSARIF := []byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"dependency-check","rules":[]}},"results":[{"ruleId":"CVE-2099-1001","level":"error","message":{"text":"x"}}]}]}`)
	merged, err := MergeSARIF(SARIFDoc{"trivy-fs", trivySARIF}, SARIFDoc{"dependency-check", odcSARIF})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name string `json:"name"`
				} `json:"driver"`
			} `json:"tool"`
			Results           []any `json:"results"`
			AutomationDetails struct {
				ID string `json:"id"`
			} `json:"automationDetails"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(merged, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || len(doc.Runs) != 2 || doc.Runs[0].Tool.Driver.Name != "Trivy" || len(doc.Runs[0].Results) != 27 ||
		doc.Runs[0].AutomationDetails.ID != "trivy-fs/" || doc.Runs[1].AutomationDetails.ID != "dependency-check/" {
		t.Errorf("merged SARIF: %+v", doc)
	}
	if _, err := MergeSARIF(SARIFDoc{"x", []byte(`{"version":"2.0.0","runs":[]}`)}); err == nil {
		t.Error("SARIF 2.0.0 accepted")
	}

	fs, _ := ParseTrivy(fixtures.Read(t, dir, "fs-all.json"))
	gate := &QualityGate{Status: "OK", URL: "https://sonar.example.invalid/dashboard?id=wanderlust"}
	v := Evaluate(fs, gate, Policy{FailOn: High, Allow: []string{"CVE-2099-0001"}})
	md := Markdown(v, gate, []string{"Dependency-Check skipped: no NVD API key"})
	c := v.Counts["trivy"]
	row := "| trivy | " + itoa(c["CRITICAL"]) + " | " + itoa(c["HIGH"]) + " | " + itoa(c["MEDIUM"]) + " | " + itoa(c["LOW"]) + " | " + itoa(c["UNKNOWN"]) + " |"
	for _, want := range []string{"❌ failed", row, "#### trivy", "[CVE-2099-0002](https://avd.aquasec.com/nvd/cve-2099-0002)", "SonarQube quality gate: OK", "Allowed by policy", "- HIGH CVE-2099-0001", "> Dependency-Check skipped"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

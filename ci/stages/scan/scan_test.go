package scan

// No Dagger engine, Dependency-Check or SonarQube runs here. The scanner containers are answered by a
// stand-in Dagger session (daggerfake) that records the pipelines and returns, as the containers'
// output files, real Trivy reports (shared fixtures), a Dependency-Check report in its documented
// format, and a report-task.txt pointing at a stand-in of SonarQube's Web API.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

const (
	sonarToken = "squ_planted_sonar_token_0001"
	nvdKey     = "nvd-planted-key-0002"
)

// sonarStandIn speaks api/ce/task (one PENDING, then SUCCESS) and api/qualitygates/project_status.
func sonarStandIn(t *testing.T, gate string) *httptest.Server {
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, _, _ := r.BasicAuth(); u != sonarToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/ce/task":
			polls++
			if polls == 1 {
				fmt.Fprint(w, `{"task":{"status":"PENDING"}}`)
				return
			}
			fmt.Fprint(w, `{"task":{"status":"SUCCESS","analysisId":"A1"}}`)
		case "/api/qualitygates/project_status":
			fmt.Fprintf(w, `{"projectStatus":{"status":%q,"conditions":[]}}`, gate)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fakeScanners answers the scanner containers' output files and secrets.
func fakeScanners(t *testing.T, sonarURL string) (*daggerfake.Server, *dagger.Client) {
	t.Helper()
	trivy := fixtures.Trivy(t)
	odc, err := os.ReadFile("findings/testdata/odc-documented-format.json")
	if err != nil {
		t.Fatal(err)
	}
	var session *daggerfake.Server
	session = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		switch field {
		case "plaintext":
			if strings.Contains(session.Expand(q), "SONAR") {
				return sonarToken, nil
			}
			return nvdKey, nil
		case "contents":
			file := func(path string) bool { return daggerfake.HasCall(q, "file", `path:"`+path+`"`) }
			switch {
			case file("/out/trivy-fs.json"):
				return string(fixtures.Read(t, trivy, "fs-all.json")), nil
			case file("/out/trivy-fs.sarif"):
				return string(fixtures.Read(t, trivy, "fs-all.sarif")), nil
			case file("/out/sbom.cdx.json"):
				return string(fixtures.Read(t, trivy, "sbom.cdx.json")), nil
			case file("/out/trivy-image-backend.json"):
				return string(fixtures.Read(t, trivy, "fs-vuln.json")), nil
			case file("/out/trivy-image-backend.sarif"):
				return `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Trivy"}},"results":[]}]}`, nil
			case file("/out/dependency-check-report.json"):
				return string(odc), nil
			case file("/out/dependency-check-report.sarif"):
				return `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"dependency-check"}},"results":[]}]}`, nil
			case file("/usr/src/.scannerwork/report-task.txt"):
				return "projectKey=wanderlust\nserverUrl=" + sonarURL + "\ndashboardUrl=" + sonarURL + "/dashboard?id=wanderlust\nceTaskId=T1\n", nil
			}
			return nil, fmt.Errorf("unexpected file read: %s", q)
		}
		return daggerfake.Default(field, q)
	}))
	return session, dagger.Connect()
}

func TestScanEverythingGatesAndReports(t *testing.T) {
	sonar := sonarStandIn(t, "ERROR")
	session, c := fakeScanners(t, sonar.URL)
	o := Options{
		TrivyDBRepository: "registry.example.invalid/mirror/trivy-db:2",
		Images:            map[string]*dagger.Container{"backend": c.Container().From("registry.invalid/wanderlust-backend:1.0.0")},
		NVDAPIKey:         c.Secret("env://NVD_API_KEY"),
		SonarURL:          sonar.URL,
		SonarToken:        c.Secret("env://SONAR_TOKEN"),
		SonarTimeout:      10 * time.Second,
	}
	res, err := Run(context.Background(), c, c.Directory(), o)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Verdict
	if v.Pass || !v.GateFailed || len(v.Blocking["trivy"]) == 0 || len(v.Blocking["dependency-check"]) != 2 {
		t.Fatalf("verdict: pass=%v gate=%v blocking=%v", v.Pass, v.GateFailed, v.Blocking)
	}
	if res.Gate == nil || res.Gate.Status != "ERROR" || !strings.Contains(res.Gate.URL, "/dashboard?id=wanderlust") {
		t.Errorf("gate = %+v", res.Gate)
	}
	// Image findings are told apart from source findings.
	imageFindings := 0
	for _, f := range res.Findings {
		if strings.HasPrefix(f.File, "trivy-image-backend.json: ") {
			imageFindings++
		}
	}
	if imageFindings != 5 {
		t.Errorf("%d image findings, want the 5 of the image report", imageFindings)
	}
	for _, want := range []string{"❌ failed", "#### dependency-check", "CVE-2099-1004", "SonarQube quality gate: ERROR"} {
		if !strings.Contains(res.Markdown, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if _, err := res.Reports.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}

	all := session.Expand(session.All())
	for _, c := range [][]string{
		{"from", `address:"` + TrivyImage + `"`}, {"from", `address:"` + ODCImage + `"`}, {"from", `address:"` + SonarImage + `"`},
		{"cacheVolume", `key:"wanderlust-trivy"`}, {"withMountedCache", `path:"/root/.cache/trivy"`},
		{"cacheVolume", `key:"wanderlust-dependency-check"`}, {"withMountedCache", `path:"/usr/share/dependency-check/data"`},
		{"withWorkdir", `path:"/src"`}, // where Trivy finds .trivyignore
		{"withExec", `"trivy","fs","--scanners","vuln,secret,misconfig","--exit-code","0"`, `"--db-repository","registry.example.invalid/mirror/trivy-db:2"`},
		{"withExec", `"trivy","image","--input","/images/backend.tar"`},
		{"withMountedFile", `path:"/images/backend.tar"`},
		{"asTarball"},
		{"withSecretVariable", `name:"NVD_API_KEY"`}, {"withSecretVariable", `name:"SONAR_TOKEN"`},
		{"withExec", `--nvdApiKey \"$NVD_API_KEY\"`, `--failOnCVSS 11`},
		{"withEnvVariable", `name:"SONAR_HOST_URL"`},
		{"withNewFile", `path:"merged.sarif"`}, {"withNewFile", `path:"summary.md"`}, {"withNewFile", `path:"verdict.json"`},
		{"withNewFile", `path:"dependency-check-report.json"`}, {"withNewFile", `path:"trivy-image-backend.sarif"`},
	} {
		if !daggerfake.HasCall(all, c[0], c[1:]...) {
			t.Errorf("no %s(%s) in the recorded pipelines", c[0], strings.Join(c[1:], ", "))
		}
	}
	// Secrets reach containers only as secrets: never as plain variables, never their values.
	for _, name := range []string{"NVD_API_KEY", "SONAR_TOKEN"} {
		if daggerfake.HasCall(all, "withEnvVariable", `name:"`+name+`"`) {
			t.Errorf("%s passed as a plain environment variable", name)
		}
	}
	for _, secret := range []string{sonarToken, nvdKey} {
		if strings.Contains(session.All(), secret) || strings.Contains(res.Markdown, secret) || strings.Contains(v.Reason(), secret) {
			t.Errorf("a secret value leaked into a query or the report")
		}
	}
}

func TestScanWithoutOptionalScanners(t *testing.T) {
	session, c := fakeScanners(t, "")
	res, err := Run(context.Background(), c, c.Directory(), Options{Policy: &findings.Policy{FailOn: findings.Critical, Allow: []string{"CVE-2099-0002", "aws-secret-access-key", "github-pat"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verdict.Pass || len(res.Skipped) != 2 || !strings.Contains(res.Markdown, "Dependency-Check skipped") || !strings.Contains(res.Markdown, "SonarQube skipped") {
		t.Errorf("result: pass=%v skipped=%v", res.Verdict.Pass, res.Skipped)
	}
	all := session.All()
	if strings.Contains(all, ODCImage) || strings.Contains(all, SonarImage) {
		t.Error("an unconfigured scanner ran")
	}
}

func TestSonarURLWithoutTokenIsAnError(t *testing.T) {
	_, c := fakeScanners(t, "http://127.0.0.1:1")
	_, err := Run(context.Background(), c, c.Directory(), Options{SonarURL: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "--sonar-token") {
		t.Fatalf("err = %v", err)
	}
}

// What the real images do, checked on the plan: Trivy creates its output file but not the file's
// directory, Dependency-Check runs as uid 1000 (it cannot create /out nor write a root-owned cache
// volume). Every path given to a scanner's output flag must lie in a directory that the pipeline
// created or mounted before that exec, owned by the user the image runs as.
func TestScannerOutputDirectoriesExistBeforeTheScan(t *testing.T) {
	sonar := sonarStandIn(t, "OK")
	session, c := fakeScanners(t, sonar.URL)
	o := Options{Images: map[string]*dagger.Container{"backend": c.Container().From("registry.invalid/wanderlust-backend:1.0.0")},
		NVDAPIKey: c.Secret("env://NVD_API_KEY"), SonarURL: sonar.URL, SonarToken: c.Secret("env://SONAR_TOKEN"), SonarTimeout: 10 * time.Second}
	if _, err := Run(context.Background(), c, c.Directory(), o); err != nil {
		t.Fatal(err)
	}
	// And publish's SBOM + vulnerability report of an image.
	if _, err := ImageEvidence(c, o.Images["backend"], o).File("/out/sbom.cdx.json").Contents(context.Background()); err != nil {
		t.Fatal(err)
	}
	pathArg := regexp.MustCompile(`path:\\?"([^"\\]+)\\?"`)
	outFlag := regexp.MustCompile(`(?:^|[\s"])(?:--output|--out|-o)[" ,=\\]+(/[^"\\ ]+)`)
	ownerArg := regexp.MustCompile(`owner:\\?"([^"\\]+)`)
	checked := 0
	for _, q := range session.Queries() {
		steps := daggerfake.Steps(session.Expand(q))
		made := map[string]string{} // directory → owner
		image := ""
		for _, s := range steps {
			switch s.Field {
			case "from":
				image, made = s.Args, map[string]string{"/": "root"}
			case "withDirectory", "withMountedDirectory", "withMountedCache":
				if m := pathArg.FindStringSubmatch(s.Args); m != nil {
					owner := "root"
					if o := ownerArg.FindStringSubmatch(s.Args); o != nil {
						owner = o[1]
					}
					made[m[1]] = owner
				}
			case "withExec":
				for _, m := range outFlag.FindAllStringSubmatch(s.Args, -1) {
					out, dir := m[1], m[1]
					if strings.Contains(filepath.Base(out), ".") {
						dir = filepath.Dir(out) // a file: the tool creates it, not its directory
					}
					owner, ok := made[dir]
					if !ok {
						t.Errorf("%s writes %s, but nothing created %s before that exec:\n%s", image, out, dir, s.Args)
						continue
					}
					if strings.Contains(image, ODCImage) && owner != ODCUser {
						t.Errorf("%s writes %s into %s owned by %s; the image runs as %s", image, out, dir, owner, ODCUser)
					}
					checked++
				}
				if strings.Contains(image, ODCImage) {
					for dir, owner := range made {
						if strings.HasPrefix(dir, "/usr/share/dependency-check/data") && owner != ODCUser {
							t.Errorf("Dependency-Check's data volume %s is owned by %s, not %s", dir, owner, ODCUser)
						}
					}
				}
			}
		}
	}
	// trivy fs + convert, trivy image + convert, dependency-check, the SBOM and the image vulns: each seen.
	if checked < 7 || !strings.Contains(session.All(), `"--format","cyclonedx","--output","/out/sbom.cdx.json"`) {
		t.Fatalf("checked %d output flags; the recorded pipelines:\n%s", checked, session.All())
	}
}

// Package scan runs the security scanners in containers through Dagger — Trivy (filesystem: vulns,
// secrets, misconfigurations; and the built images from tarballs), OWASP Dependency-Check and the
// SonarQube scanner — then gates on the findings in Go (package findings) and returns every raw report,
// a merged SARIF log and a Markdown summary. Scanners never fail the run themselves: the gate does,
// and says why.
package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/stages/scan/sonar"
)

// Pinned scanner images.
const (
	TrivyImage = "docker.io/aquasec/trivy:0.74.0"
	ODCImage   = "docker.io/owasp/dependency-check:12.1.0"
	SonarImage = "docker.io/sonarsource/sonar-scanner-cli:11.1.1.1661_6.2.1"
)

// ODCUser is the user ODCImage runs as (its Dockerfile: USER 1000, group 0).
const ODCUser = "1000:0"

// outDir is where the scanner containers write their reports.
const outDir = "/out"

// Options configure a scan; the zero value scans the source with Trivy only, with the default policy.
type Options struct {
	// Policy decides the gate (default findings.DefaultPolicy()).
	Policy *findings.Policy
	// TrivyDBRepository points Trivy at a mirror of its vulnerability DB (ghcr.io rate-limits CI).
	TrivyDBRepository string
	// Images are built images to scan, by name ("backend", "frontend").
	Images map[string]*dagger.Container
	// NVDAPIKey enables OWASP Dependency-Check; without it Dependency-Check is skipped with a notice.
	NVDAPIKey *dagger.Secret
	// SonarURL and SonarToken enable SonarQube; SonarProjectKey names the project (default "wanderlust").
	SonarURL        string
	SonarToken      *dagger.Secret
	SonarProjectKey string
	// SonarTimeout bounds the wait for the quality gate (default 5 minutes).
	SonarTimeout time.Duration
}

// Result is the outcome of a scan.
type Result struct {
	Verdict  findings.Verdict
	Findings []findings.Finding
	Gate     *findings.QualityGate
	// Skipped lists the scanners that did not run, and why.
	Skipped []string
	// Markdown is the summary (also in Reports as summary.md).
	Markdown string
	// Reports holds each tool's raw reports, merged.sarif, summary.md and verdict.json.
	Reports *dagger.Directory
}

// report is one raw report file produced by a scanner container.
type report struct {
	name   string       // file name in Reports
	file   *dagger.File // the file in its container
	parse  func([]byte) ([]findings.Finding, error)
	sarif  string // SARIF category, for SARIF files
	source string // the scanner, for errors
	// labelled findings name the report in their File ("trivy-image-backend.json: …"): every report
	// but the source scan's, whose paths are the source's own.
	labelled bool
}

// Trivy is the container that scans the source (vuln, secret, misconfig; .trivyignore in the source
// is honoured) and each image tarball, writing JSON and SARIF under /out. Its DB lives in a cache volume.
func Trivy(c *dagger.Client, src *dagger.Directory, o Options) *dagger.Container {
	db := []string{}
	if o.TrivyDBRepository != "" {
		db = []string{"--db-repository", o.TrivyDBRepository}
	}
	// Trivy creates its output files, not their directory, and the image has no /out: create it (the
	// image runs as root).
	ctr := c.Container().From(TrivyImage).
		WithDirectory(outDir, c.Directory()).
		WithMountedCache("/root/.cache/trivy", c.CacheVolume("wanderlust-trivy")).
		WithMountedDirectory("/src", src).
		WithWorkdir("/src").
		WithExec(append([]string{"trivy", "fs", "--scanners", "vuln,secret,misconfig", "--exit-code", "0",
			"--format", "json", "--output", "/out/trivy-fs.json"}, append(db, ".")...)).
		WithExec([]string{"trivy", "convert", "--format", "sarif", "--output", "/out/trivy-fs.sarif", "/out/trivy-fs.json"})
	for _, name := range slices.Sorted(maps.Keys(o.Images)) {
		tar := "/images/" + name + ".tar"
		out := "/out/trivy-image-" + name
		ctr = ctr.
			WithMountedFile(tar, o.Images[name].AsTarball()).
			WithExec(append([]string{"trivy", "image", "--input", tar, "--scanners", "vuln,secret", "--exit-code", "0",
				"--format", "json", "--output", out + ".json"}, db...)).
			WithExec([]string{"trivy", "convert", "--format", "sarif", "--output", out + ".sarif", out + ".json"})
	}
	return ctr
}

// ImageEvidence is the container that makes an image's SBOM (/out/sbom.cdx.json, CycloneDX) and
// vulnerability report (/out/vulns.json) with the pinned Trivy, from the image's tarball: what
// publish signs and attaches.
func ImageEvidence(c *dagger.Client, img *dagger.Container, o Options) *dagger.Container {
	db := []string{}
	if o.TrivyDBRepository != "" {
		db = []string{"--db-repository", o.TrivyDBRepository}
	}
	const tar = "/images/image.tar"
	// As in Trivy: it creates its output files, not /out (and runs as root).
	return c.Container().From(TrivyImage).
		WithDirectory(outDir, c.Directory()).
		WithMountedCache("/root/.cache/trivy", c.CacheVolume("wanderlust-trivy")).
		WithMountedFile(tar, img.AsTarball()).
		WithExec([]string{"trivy", "image", "--input", tar, "--format", "cyclonedx", "--output", "/out/sbom.cdx.json"}).
		WithExec(append([]string{"trivy", "image", "--input", tar, "--scanners", "vuln", "--exit-code", "0",
			"--format", "json", "--output", "/out/vulns.json"}, db...))
}

// DependencyCheck is the container that runs OWASP Dependency-Check on the source with the NVD API
// key as a secret (expanded by the shell inside the container, never an argument of the pipeline) and
// its data directory in a cache volume, writing JSON and SARIF under /out.
func DependencyCheck(c *dagger.Client, src *dagger.Directory, key *dagger.Secret) *dagger.Container {
	// The image runs as ODCUser, who cannot create /out, nor write to a fresh (root-owned) cache volume.
	owner := dagger.ContainerWithDirectoryOpts{Owner: ODCUser}
	return c.Container().From(ODCImage).
		WithDirectory(outDir, c.Directory(), owner).
		WithMountedCache("/usr/share/dependency-check/data", c.CacheVolume("wanderlust-dependency-check"),
			dagger.ContainerWithMountedCacheOpts{Owner: ODCUser}).
		WithMountedDirectory("/src", src).
		WithSecretVariable("NVD_API_KEY", key).
		WithExec([]string{"sh", "-c", `/usr/share/dependency-check/bin/dependency-check.sh --project wanderlust --scan /src ` +
			`--exclude "**/node_modules/**" --format JSON --format SARIF --out /out --failOnCVSS 11 --nvdApiKey "$NVD_API_KEY"`})
}

// SonarScanner is the container that runs the SonarQube scanner on the source; the token is a secret
// variable. The report-task.txt it leaves names the analysis to wait for.
func SonarScanner(c *dagger.Client, src *dagger.Directory, url, projectKey string, token *dagger.Secret) *dagger.Container {
	return c.Container().From(SonarImage).
		WithEnvVariable("SONAR_HOST_URL", url).
		WithSecretVariable("SONAR_TOKEN", token).
		WithMountedDirectory("/usr/src", src).
		WithWorkdir("/usr/src").
		WithExec([]string{"sonar-scanner", "-Dsonar.projectKey=" + projectKey, "-Dsonar.sources=.",
			"-Dsonar.exclusions=**/node_modules/**,**/dist/**", "-Dsonar.qualitygate.wait=false"})
}

// Run scans the source (and images), evaluates the gate and assembles the reports. An error means a
// scanner could not run; a failed gate is reported in Result.Verdict, with the reports.
func Run(ctx context.Context, c *dagger.Client, src *dagger.Directory, o Options) (*Result, error) {
	policy := findings.DefaultPolicy()
	if o.Policy != nil {
		policy = *o.Policy
	}
	res := &Result{}
	trivy := Trivy(c, src, o)
	reports := []report{{name: "trivy-fs.json", file: trivy.File("/out/trivy-fs.json"), parse: findings.ParseTrivy, source: "trivy"},
		{name: "trivy-fs.sarif", file: trivy.File("/out/trivy-fs.sarif"), sarif: "trivy-fs", source: "trivy"}}
	for _, name := range slices.Sorted(maps.Keys(o.Images)) {
		base := "trivy-image-" + name
		reports = append(reports,
			report{name: base + ".json", file: trivy.File("/out/" + base + ".json"), parse: findings.ParseTrivy, source: "trivy", labelled: true},
			report{name: base + ".sarif", file: trivy.File("/out/" + base + ".sarif"), sarif: base, source: "trivy"})
	}
	if o.NVDAPIKey != nil {
		odc := DependencyCheck(c, src, o.NVDAPIKey)
		reports = append(reports,
			report{name: "dependency-check-report.json", file: odc.File("/out/dependency-check-report.json"), parse: findings.ParseDependencyCheck, source: "dependency-check", labelled: true},
			report{name: "dependency-check-report.sarif", file: odc.File("/out/dependency-check-report.sarif"), sarif: "dependency-check", source: "dependency-check"})
	} else {
		res.Skipped = append(res.Skipped, "OWASP Dependency-Check skipped: no NVD API key given (--nvd-api-key).")
	}

	// The scanners run concurrently; each report is read once.
	contents := make([]string, len(reports))
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range reports {
		g.Go(func() error {
			s, err := r.file.Contents(gctx)
			if err != nil {
				return fmt.Errorf("scan: %s: %w", r.source, err)
			}
			contents[i] = s
			return nil
		})
	}
	if o.SonarURL != "" {
		g.Go(func() error {
			gate, err := runSonar(gctx, c, src, o)
			res.Gate = gate
			return err
		})
	} else {
		res.Skipped = append(res.Skipped, "SonarQube skipped: no server configured (--sonar-url).")
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	dir := c.Directory()
	var sarifs []findings.SARIFDoc
	for i, r := range reports {
		dir = dir.WithNewFile(r.name, contents[i])
		if r.parse != nil {
			fs, err := r.parse([]byte(contents[i]))
			if err != nil {
				return nil, fmt.Errorf("scan: %s: %w", r.name, err)
			}
			if r.labelled {
				for j := range fs {
					fs[j].File = r.name + ": " + fs[j].File
				}
			}
			res.Findings = append(res.Findings, fs...)
		}
		if r.sarif != "" {
			sarifs = append(sarifs, findings.SARIFDoc{Category: r.sarif, Data: []byte(contents[i])})
		}
	}
	merged, err := findings.MergeSARIF(sarifs...)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	res.Verdict = findings.Evaluate(res.Findings, res.Gate, policy)
	res.Markdown = findings.Markdown(res.Verdict, res.Gate, res.Skipped)
	verdict, err := json.MarshalIndent(struct {
		findings.Verdict
		Findings []findings.Finding    `json:"findings"`
		Gate     *findings.QualityGate `json:"qualityGate,omitempty"`
		Skipped  []string              `json:"skipped,omitempty"`
	}{res.Verdict, res.Findings, res.Gate, res.Skipped}, "", "  ")
	if err != nil {
		return nil, err
	}
	res.Reports = dir.
		WithNewFile("merged.sarif", string(merged)).
		WithNewFile("summary.md", res.Markdown).
		WithNewFile("verdict.json", string(verdict))
	return res, nil
}

// runSonar runs the scanner, then waits in Go for the analysis and its quality gate.
func runSonar(ctx context.Context, c *dagger.Client, src *dagger.Directory, o Options) (*findings.QualityGate, error) {
	if o.SonarToken == nil {
		return nil, fmt.Errorf("scan: sonarqube: --sonar-token is required with --sonar-url")
	}
	key := o.SonarProjectKey
	if key == "" {
		key = "wanderlust"
	}
	txt, err := SonarScanner(c, src, o.SonarURL, key, o.SonarToken).File("/usr/src/.scannerwork/report-task.txt").Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan: sonar-scanner: %w", err)
	}
	task, err := sonar.ParseReportTask(txt)
	if err != nil {
		return nil, err
	}
	token, err := o.SonarToken.Plaintext(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan: read the sonar token: %w", err)
	}
	timeout := o.SonarTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return (&sonar.Client{URL: o.SonarURL, Token: token}).Wait(wctx, task)
}

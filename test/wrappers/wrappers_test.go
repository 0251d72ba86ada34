// Package wrappers_test checks that the CI wrappers stay thin: every command they run is a
// `dagger call …`, secrets reach Dagger by name (env:NAME) and never as values, and the seed's Jenkins
// parameters are kept.
package wrappers_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// secretFlags are flags whose value is a secret: they must be env:NAME references.
var secretFlags = regexp.MustCompile(`--(token|git-token|registry-password|argocd-token|nvd-api-key|sonar-token|smtp-password|password|oidc-token|oidc-request-url|oidc-request-token)=(\S+)`)

func checkCommand(t *testing.T, where, cmd string) {
	t.Helper()
	cmd = strings.TrimSpace(cmd)
	if !strings.HasPrefix(cmd, "dagger call ") && !strings.HasPrefix(cmd, "call ") {
		t.Errorf("%s runs %q, not dagger call", where, cmd)
	}
	for _, m := range secretFlags.FindAllStringSubmatch(cmd, -1) {
		if !regexp.MustCompile(`^env:[A-Z][A-Z0-9_]*$`).MatchString(m[2]) {
			t.Errorf("%s passes --%s as %q: secrets go by name (env:NAME)", where, m[1], m[2])
		}
	}
}

// summaryStep is the only shell a wrapper may run: a file Dagger exported, appended to the job summary.
var summaryStep = regexp.MustCompile(`^cat [A-Za-z0-9_./-]+\.md >> "\$GITHUB_STEP_SUMMARY"\n?$`)

var workflows = []string{"../../.github/workflows/pull-request.yml", "../../.github/workflows/deploy.yml", "../../.github/workflows/promote.yml", "../../.github/workflows/release.yml"}

func TestGitHubWorkflows(t *testing.T) {
	for _, file := range workflows {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := yaml.Parse(string(b))
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := doc.Pipe(yaml.Lookup("jobs"))
		if err != nil || jobs == nil {
			t.Fatalf("%s: no jobs", file)
		}
		calls := 0
		for _, job := range jobs.Content() {
			if job.Kind != yaml.MappingNode {
				continue
			}
			steps, _ := yaml.NewRNode(job).Pipe(yaml.Lookup("steps"))
			if steps == nil {
				continue
			}
			for _, step := range steps.Content() {
				s := yaml.NewRNode(step)
				if run := s.Field("run"); run != nil {
					// The one shell step a wrapper may have: appending a file Dagger exported to the job summary.
					if !summaryStep.MatchString(run.Value.YNode().Value) {
						t.Errorf("%s: a run step (%s): wrappers only call the Dagger action", file, run.Value.YNode().Value)
					}
					continue
				}
				uses := s.Field("uses")
				if uses == nil {
					t.Errorf("%s: a step that uses nothing", file)
					continue
				}
				ref := uses.Value.YNode().Value
				if !regexp.MustCompile(`@[0-9a-f]{40}$`).MatchString(ref) {
					t.Errorf("%s: %s is not pinned to a commit", file, ref)
				}
				if strings.HasPrefix(ref, "dagger/dagger-for-github@") {
					calls++
					with, _ := s.Pipe(yaml.Lookup("with"))
					verb, args := with.Field("verb"), with.Field("args")
					if verb == nil || verb.Value.YNode().Value != "call" || args == nil {
						t.Errorf("%s: the Dagger step does not `call`", file)
						continue
					}
					checkCommand(t, file, "dagger call "+args.Value.YNode().Value)
					if v := with.Field("version"); v == nil || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v.Value.YNode().Value) {
						t.Errorf("%s: the Dagger version is not pinned", file)
					}
				}
				if env := s.Field("env"); env != nil {
					for _, kv := range env.Value.Content() {
						if kv.Kind == yaml.ScalarNode && strings.Contains(kv.Value, "${{") && !regexp.MustCompile(`^\$\{\{ (secrets|vars)\.[A-Z_]+ \}\}$`).MatchString(kv.Value) {
							t.Errorf("%s: env value %q is not a secret or variable by name", file, kv.Value)
						}
					}
				}
			}
		}
		if calls == 0 {
			t.Errorf("%s calls Dagger nowhere", file)
		}
	}
}

func TestJenkinsfile(t *testing.T) {
	b, err := os.ReadFile("../../Jenkinsfile")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, p := range []string{"FRONTEND_DOCKER_TAG", "BACKEND_DOCKER_TAG"} {
		if !strings.Contains(src, "string(name: '"+p+"'") {
			t.Errorf("the seed's parameter %s is gone", p)
		}
	}
	if strings.Contains(src, "emailext") {
		t.Error("emailext: the email is the pipeline's own")
	}
	if strings.Contains(src, "sh \"") || strings.Contains(src, "sh \"\"\"") {
		t.Error("a double-quoted sh step: Groovy would interpolate parameters into the command")
	}
	shells := regexp.MustCompile(`(?m)^\s*sh\s+'([^']*)'`).FindAllStringSubmatch(src, -1)
	if len(shells) < 3 {
		t.Fatalf("%d sh steps found", len(shells))
	}
	for _, m := range shells {
		checkCommand(t, "Jenkinsfile", m[1])
	}
	if n := len(regexp.MustCompile(`(?m)^\s*(sh|bat|powershell)\b`).FindAllString(src, -1)); n != len(shells) {
		t.Errorf("%d sh steps, %d checked: a step is written in another form", n, len(shells))
	}
	for _, m := range regexp.MustCompile(`credentials\('([^']+)'\)`).FindAllStringSubmatch(src, -1) {
		if strings.ContainsAny(m[1], " =") {
			t.Errorf("credential %q is not a credential ID", m[1])
		}
	}
}

// parse reads a workflow.
func parse(t *testing.T, file string) *yaml.RNode {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func lookup(n *yaml.RNode, path ...string) *yaml.RNode {
	v, err := n.Pipe(yaml.Lookup(path...))
	if err != nil {
		return nil
	}
	return v
}

// Every job gets exactly the permissions it needs: nothing at the top level; contents: read to check
// out; packages: write only to push images, packages: read only to read them (the evidence that
// promote verifies); security-events: write only to upload SARIF; id-token never (no keyless
// signing yet).
func TestWorkflowPermissionsAreLeast(t *testing.T) {
	for _, file := range workflows {
		doc := parse(t, file)
		if top := lookup(doc, "permissions"); top == nil || len(top.Content()) != 0 {
			t.Errorf("%s: top-level permissions must be {} (each job declares its own)", file)
		}
		jobs := lookup(doc, "jobs")
		for i := 0; i+1 < len(jobs.YNode().Content); i += 2 {
			name, job := jobs.YNode().Content[i].Value, yaml.NewRNode(jobs.YNode().Content[i+1])
			perms := lookup(job, "permissions")
			if perms == nil {
				t.Errorf("%s: job %s declares no permissions", file, name)
				continue
			}
			src, _ := job.String()
			registry := strings.Contains(src, "--registry-password=")
			pushes := registry && (strings.Contains(src, " deploy ") || strings.Contains(src, " publish ") || strings.Contains(src, " publish-runner "))
			reads := registry && !pushes
			uploads := strings.Contains(src, "upload-sarif")
			keyless := strings.Contains(src, "--keyless")
			for j := 0; j+1 < len(perms.YNode().Content); j += 2 {
				scope, level := perms.YNode().Content[j].Value, perms.YNode().Content[j+1].Value
				ok := scope == "contents" && level == "read" ||
					scope == "packages" && level == "write" && pushes ||
					scope == "packages" && level == "read" && reads ||
					scope == "security-events" && level == "write" && uploads ||
					scope == "id-token" && level == "write" && keyless
				if !ok {
					t.Errorf("%s: job %s has %s: %s, which it does not need", file, name, scope, level)
				}
			}
			if reads && lookup(job, "permissions", "packages") == nil {
				t.Errorf("%s: job %s reads the registry without packages: read", file, name)
			}
			if keyless && lookup(job, "permissions", "id-token") == nil {
				t.Errorf("%s: job %s signs keyless without id-token: write (no OIDC token to certify)", file, name)
			}
			if pushes && lookup(job, "permissions", "packages") == nil {
				t.Errorf("%s: job %s pushes images without packages: write (GHCR answers 403)", file, name)
			}
		}
	}
}

// The deploy pushes its bump commit to the GitOps repository; when that is this repository, the push
// must not start another deploy.
func TestDeployWorkflowCannotLoop(t *testing.T) {
	doc := parse(t, "../../.github/workflows/deploy.yml")
	ignored := lookup(doc, "on", "push", "paths-ignore")
	if ignored == nil || !strings.Contains(mustString(t, ignored), "kubernetes/**") {
		t.Error("deploy.yml does not ignore pushes that only touch kubernetes/")
	}
	src, _ := doc.String()
	if !strings.Contains(src, "--skip-ci") {
		t.Error("deploy.yml does not mark its bump commit [skip ci]")
	}
}

func mustString(t *testing.T, n *yaml.RNode) string {
	s, err := n.String()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deploy.yml signs keyless and its gate, like promote.yml's, requires deploy.yml's own identity on
// main: no key to commit (cosign.pub) or keep in secrets.
func TestEvidenceIsKeylessByTheDeployWorkflowsIdentity(t *testing.T) {
	identity := "--verify-identity=https://github.com/${{ github.repository }}/.github/workflows/deploy.yml@refs/heads/main --verify-issuer=https://token.actions.githubusercontent.com"
	for _, f := range []string{"deploy.yml", "promote.yml"} {
		b, err := os.ReadFile("../../.github/workflows/" + f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		if !strings.Contains(src, identity) {
			t.Errorf("%s does not verify by deploy.yml's identity on main", f)
		}
		if strings.Contains(src, "cosign.pub") || strings.Contains(src, "--verify-key") || strings.Contains(src, "COSIGN_") {
			t.Errorf("%s still needs a cosign key", f)
		}
	}
	b, _ := os.ReadFile("../../.github/workflows/deploy.yml")
	if !strings.Contains(string(b), "--keyless --oidc-request-url=env:ACTIONS_ID_TOKEN_REQUEST_URL --oidc-request-token=env:ACTIONS_ID_TOKEN_REQUEST_TOKEN") {
		t.Error("deploy.yml does not sign keyless with the job's token")
	}
}

func TestPromoteWorkflow(t *testing.T) {
	doc := parse(t, "../../.github/workflows/promote.yml")
	for _, in := range []string{"from", "to"} {
		typ, opts := lookup(doc, "on", "workflow_dispatch", "inputs", in, "type"), lookup(doc, "on", "workflow_dispatch", "inputs", in, "options")
		if typ == nil || typ.YNode().Value != "choice" || opts == nil || len(opts.Content()) == 0 {
			t.Errorf("input %s is not validated against a list", in)
		}
	}
	if g := lookup(doc, "concurrency", "group"); g == nil || !strings.Contains(g.YNode().Value, "inputs.to") {
		t.Error("no concurrency per target environment")
	}
	if e := lookup(doc, "jobs", "promote", "environment"); e == nil || !strings.Contains(e.YNode().Value, "inputs.to") {
		t.Error("the job does not run in the target's GitHub environment (approvals for prod)")
	}
}

// Pull requests from forks get no secrets: every step that passes one must not run for them, and the
// scan and its gate still run without.
func TestForkPullRequestsNeedNoSecret(t *testing.T) {
	doc := parse(t, "../../.github/workflows/pull-request.yml")
	forkSteps := 0
	for _, job := range lookup(doc, "jobs").YNode().Content {
		if job.Kind != yaml.MappingNode {
			continue
		}
		steps := lookup(yaml.NewRNode(job), "steps")
		if steps == nil {
			continue
		}
		for _, st := range steps.Content() {
			s := yaml.NewRNode(st)
			src, _ := s.String()
			cond := ""
			if c := s.Field("if"); c != nil {
				cond = c.Value.YNode().Value
			}
			if strings.Contains(src, "secrets.") && !strings.Contains(cond, "!github.event.pull_request.head.repo.fork") {
				t.Errorf("a step uses secrets but runs for forks: %s", src)
			}
			if strings.Contains(cond, "github.event.pull_request.head.repo.fork") && !strings.Contains(cond, "!") {
				forkSteps++
			}
		}
	}
	if forkSteps < 1 {
		t.Errorf("%d steps for forks; want the scan", forkSteps)
	}
	// One scan, its gate decided from the exported verdict (for forks too): no second scan.
	src, _ := doc.String()
	if regexp.MustCompile(`args:.* scan .*\bgate\b`).MatchString(src) || !strings.Contains(src, "args: scan-gate --verdict=scan-reports/verdict.json") {
		t.Error("the gate scans again instead of reading the exported verdict")
	}
}

func TestJenkinsCredentialsAndParameters(t *testing.T) {
	b, err := os.ReadFile("../../Jenkinsfile")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	if regexp.MustCompile(`=\s*credentials\(`).MatchString(src) {
		t.Error("credentials bound pipeline-wide; bind each in the stage that needs it")
	}
	stages := regexp.MustCompile(`stage\('([^']+)'\)`).FindAllStringSubmatchIndex(src, -1)
	deployCreds := []string{"registry-token", "gitops-token", "argocd-auth-token", "smtp-password"}
	for i, st := range stages {
		end := len(src)
		if i+1 < len(stages) {
			end = stages[i+1][0]
		}
		name, body := src[st[2]:st[3]], src[st[0]:end]
		for _, c := range deployCreds {
			if strings.Contains(name, "Scan") && strings.Contains(body, c) {
				t.Errorf("the pull-request stage %q binds the deploy credential %s", name, c)
			}
		}
	}
	for _, p := range []string{"FRONTEND_DOCKER_TAG", "BACKEND_DOCKER_TAG"} {
		if strings.Contains(src, "${"+p+"}") || regexp.MustCompile(`[^"]\$`+p+`\b`).MatchString(strings.ReplaceAll(src, "${"+p+":+", "")) {
			t.Errorf("%s reaches the shell unquoted", p)
		}
	}
	if !strings.Contains(src, "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}") {
		t.Error("the tag parameters are not checked against the OCI tag grammar")
	}
}

// actionlint (the linter GitHub users run) finds nothing in the workflows.
func TestActionlint(t *testing.T) {
	var out strings.Builder
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(workflows, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("actionlint: %s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
	// The linter is live: it finds the mistakes of a broken workflow.
	bad, err := l.Lint("broken.yml", []byte("on: push\njobs:\n  j:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ secrets }}\n        if: ${{ inputs.nope }}\n"), nil)
	if err != nil || len(bad) == 0 {
		t.Errorf("actionlint found nothing in a broken workflow (%v)", err)
	}
}

func TestOnlyTheSummaryStepMayRunAShell(t *testing.T) {
	for cmd, ok := range map[string]bool{
		`cat metrics/metrics.md >> "$GITHUB_STEP_SUMMARY"`: true, `cat scan-reports/summary.md >> "$GITHUB_STEP_SUMMARY"` + "\n": true,
		`curl https://x | sh`: false, `cat a.md >> "$GITHUB_STEP_SUMMARY"; rm -rf ~`: false, `cat $(id).md >> "$GITHUB_STEP_SUMMARY"`: false,
	} {
		if summaryStep.MatchString(cmd) != ok {
			t.Errorf("%q: allowed = %v", cmd, !ok)
		}
	}
}

// Jenkins: one scan (the gate reads its exported verdict), and no deploy loop when the GitOps
// repository is this one (the bump commit says [skip ci]; such a build deploys nothing).
func TestJenkinsScansOnceAndCannotLoop(t *testing.T) {
	b, err := os.ReadFile("../../Jenkinsfile")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	if n := strings.Count(src, "dagger call --source=. scan "); n != 1 || !strings.Contains(src, "dagger call scan-gate --verdict=scan-reports/verdict.json") {
		t.Errorf("%d scans; want one, gated from its exported verdict", n)
	}
	if !strings.Contains(src, "--skip-ci") || !strings.Contains(src, `not { changelog '.*\\[skip ci\\].*' }`) {
		t.Error("the deploy stage can run on its own bump commit")
	}
}

// A failed deployment's report is kept: the wrappers run deploy and promote with --exit-zero and a
// JSON report saved to a file, put it in the job summary (or the build's artifacts), and only then
// fail the job through the report's gate.
func TestWrappersKeepTheReportOfAFailedRun(t *testing.T) {
	for file, fn := range map[string]string{"../../.github/workflows/deploy.yml": "deploy", "../../.github/workflows/promote.yml": "promote", "../../Jenkinsfile": "deploy"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		call := regexp.MustCompile(`(?s)\b` + fn + ` --.*?--report-format=json --exit-zero`).FindString(src)
		if call == "" {
			t.Errorf("%s: %s does not print its JSON report with --exit-zero", file, fn)
			continue
		}
		saved := regexp.MustCompile(`(--output=|> )([a-z-]+\.json)`).FindStringSubmatch(src)
		if saved == nil {
			t.Errorf("%s: the report is not saved to a file", file)
			continue
		}
		for _, want := range []string{"report --file=" + saved[2] + " files export", "report --file=" + saved[2] + " gate"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s: no %q", file, want)
			}
		}
		if strings.Index(src, "report --file="+saved[2]+" gate") < strings.Index(src, "report --file="+saved[2]+" files export") {
			t.Errorf("%s: the gate runs before the report is kept", file)
		}
	}
}

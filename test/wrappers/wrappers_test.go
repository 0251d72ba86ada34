// Package wrappers_test checks that the CI wrappers stay thin: every command they run is a
// `dagger call …`, secrets reach Dagger by name (env:NAME) and never as values, and the seed's Jenkins
// parameters are kept.
package wrappers_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// secretFlags are flags whose value is a secret: they must be env:NAME references.
var secretFlags = regexp.MustCompile(`--(token|git-token|registry-password|argocd-token|nvd-api-key|sonar-token|smtp-password|password)=(\S+)`)

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

func TestGitHubWorkflows(t *testing.T) {
	for _, file := range []string{"../../.github/workflows/pull-request.yml", "../../.github/workflows/deploy.yml"} {
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
					t.Errorf("%s: a run step (%s): wrappers only call the Dagger action", file, run.Value.YNode().Value)
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

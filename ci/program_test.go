package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// The GitOps program, built once per test binary from its own module (ci/cmd/gitops), as the
// module's runner builds it in the engine.
var (
	programOnce sync.Once
	programBin  string
	programErr  error
)

func buildProgram(t *testing.T) string {
	t.Helper()
	programOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wanderlust-gitops-")
		if err != nil {
			programErr = err
			return
		}
		programBin = filepath.Join(dir, gitops.Program)
		cmd := exec.Command("go", "build", "-o", programBin, ".")
		cmd.Dir = "cmd/gitops"
		if out, err := cmd.CombinedOutput(); err != nil {
			programErr = errors.New(string(out))
		}
	})
	if programErr != nil {
		t.Fatalf("build the GitOps program: %v", programErr)
	}
	return programBin
}

// programExec is one run of the program that a plan asked for.
type programExec struct {
	Args    []string
	Secrets []string // the secret variables' names
	Env     []string // the plain variables, name=value
	Files   []string // the paths of the files written into the container
	Stdout  string
	Stderr  string
	Code    int
}

// programRuns answers a stand-in session so that the module's GitOps program execs really run: the
// program, on the host, with the exec's arguments, its plain variables, and each secret variable set
// to secret (what the session's secrets hold). The module reads exit code, stdout and stderr of the
// synced container; those come from the run.
type programRuns struct {
	t      *testing.T
	bin    string
	secret string
	s      *daggerfake.Server
	mu     sync.Mutex
	byID   map[string]*programExec
	runs   []*programExec
	// Engine are variables the engine itself sets in every exec (OTEL_*, TRACEPARENT): not in the
	// plan, given to each run.
	Engine map[string]string
}

// startProgramSession starts a stand-in session whose leaves come from leaf, and whose GitOps
// program execs run for real.
func startProgramSession(t *testing.T, secret string, leaf func(field, q string) (any, error)) (*daggerfake.Server, *programRuns) {
	p := &programRuns{t: t, bin: buildProgram(t), secret: secret, byID: map[string]*programExec{}}
	p.s = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if x := p.synced(q); x != nil {
			switch field {
			case "exitCode":
				return x.Code, nil
			case "stdout":
				return x.Stdout, nil
			case "stderr":
				return x.Stderr, nil
			}
		}
		v, err := leaf(field, q)
		if id, ok := v.(string); ok && err == nil && field == "sync" {
			if x := p.run(p.s.Expand(q)); x != nil {
				p.mu.Lock()
				p.byID[id] = x
				p.mu.Unlock()
			}
		}
		return v, err
	}))
	return p.s, p
}

var nodeID = regexp.MustCompile(`node\(id:"(fake-id-[0-9a-f]{16})"\)`)

// synced is the program run whose synced container the query reads (node(id){... on Container{…}}), if any.
func (p *programRuns) synced(q string) *programExec {
	m := nodeID.FindStringSubmatch(q)
	if m == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[m[1]]
}

// run runs the pipeline's last exec when it is the program's (nil otherwise).
func (p *programRuns) run(pipeline string) *programExec {
	execs := daggerfake.Calls(pipeline, "withExec")
	if len(execs) == 0 {
		return nil
	}
	args := execArgs(execs[len(execs)-1])
	if len(args) == 0 || filepath.Base(args[0]) != gitops.Program {
		return nil
	}
	x := &programExec{Args: args}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, c := range daggerfake.Calls(pipeline, "withSecretVariable") {
		if n := argValue(c, "name"); n != "" && !slices.Contains(x.Secrets, n) {
			x.Secrets = append(x.Secrets, n)
			env = append(env, n+"="+p.secret)
		}
	}
	for _, c := range daggerfake.Calls(pipeline, "withEnvVariable") {
		n, v := argValue(c, "name"), argValue(c, "value")
		x.Env = append(x.Env, n+"="+v)
		env = append(env, n+"="+v)
	}
	for _, c := range daggerfake.Calls(pipeline, "withNewFile") {
		x.Files = append(x.Files, argValue(c, "path"))
	}
	for k, v := range p.Engine {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(p.bin, args[1:]...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	x.Stdout, x.Stderr = out.String(), errb.String()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		x.Code = ee.ExitCode()
	case err != nil:
		p.t.Fatalf("run the program: %v", err)
	}
	p.mu.Lock()
	p.runs = append(p.runs, x)
	p.mu.Unlock()
	return x
}

// Runs are the program's runs so far.
func (p *programRuns) Runs() []*programExec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*programExec(nil), p.runs...)
}

// request decodes a run's request.
func (x *programExec) request(t *testing.T, into any) {
	t.Helper()
	i := slices.Index(x.Args, "--request")
	if i < 0 || i+1 >= len(x.Args) {
		t.Fatalf("no request in %q", x.Args)
	}
	if err := gitops.ReadRequest(x.Args[i+1], into); err != nil {
		t.Fatal(err)
	}
}

// execArgs reads the args:[…] list of a withExec call (GraphQL string literals are JSON's).
func execArgs(call string) []string {
	i := strings.Index(call, "args:[")
	if i < 0 {
		return nil
	}
	rest := call[i+len("args:"):]
	var args []string
	if err := json.NewDecoder(strings.NewReader(rest)).Decode(&args); err != nil {
		return nil
	}
	return args
}

// argValue reads a string argument name:"…" of a call.
func argValue(call, name string) string {
	i := strings.Index(call, name+":\"")
	if i < 0 {
		return ""
	}
	var v string
	if err := json.NewDecoder(strings.NewReader(call[i+len(name)+1:])).Decode(&v); err != nil {
		return ""
	}
	return v
}

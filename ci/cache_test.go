package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pure lists the module's functions whose result depends on their arguments alone: Dagger may serve
// them from its function cache. Every other function reads or writes outside state (git remotes,
// registries, Argo CD, SMTP, vulnerability databases, base image tags) and must run on every call.
var pure = map[string]bool{
	"ScanReport.Gate":     true, // decides from the fields of a scan report already made
	"Wanderlust.ScanGate": true, // decides from the content of a verdict file (content-addressed)
	"Wanderlust.Report":   true, // reads a report file (content-addressed)
	"RunReport.Gate":      true, // decides from the fields of a report already read
	// Service definitions: content-addressed; they run (and reach outside state) only where used.
	"Sandbox.Registry": true, "Sandbox.Git": true, "Sandbox.Argocd": true, "Sandbox.Mail": true,
}

// Engines ≥ v0.19.4 cache function calls by their arguments for days: a rerun of `bump` once
// answered "CACHED" with the old SHA and sent nothing to git. The Go codegen of v0.21.8 reads the
// pragma `+cache="never"` from a function's doc comment; this pins it on every impure function.
func TestEveryFunctionWithSideEffectsIsNeverCached(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool {
		return strings.HasSuffix(fi.Name(), ".go") && !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Recv == nil || !fn.Name.IsExported() {
					continue
				}
				recv := fn.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				id, ok := recv.(*ast.Ident)
				if !ok || !id.IsExported() {
					continue
				}
				name := id.Name + "." + fn.Name.Name
				seen++
				never := false
				if fn.Doc != nil {
					for _, c := range fn.Doc.List {
						if strings.TrimSpace(strings.TrimPrefix(c.Text, "//")) == `+cache="never"` {
							never = true
						}
					}
				}
				switch {
				case pure[name] && never:
					t.Errorf("%s is listed as pure but marked +cache=\"never\"", name)
				case !pure[name] && !never:
					t.Errorf("%s (%s) reads or writes outside state but has no `// +cache=\"never\"` in its doc comment", name, fset.Position(fn.Pos()))
				}
			}
		}
	}
	if seen < 12 {
		t.Fatalf("found only %d module functions", seen)
	}
}

// Dagger's CLI takes the first backquoted words of a flag's doc comment as its value name in
// --help ("--signing-key cosign generate-key-pair"): no parameter doc comment may hold one.
func TestNoBackquotesInFlagDocs(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inParams := false
		for i, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "func ") && strings.HasSuffix(line, "("):
				inParams = true
			case inParams && strings.HasPrefix(line, ")"):
				inParams = false
			case inParams && strings.HasPrefix(strings.TrimSpace(line), "//") && strings.Contains(line, "`"):
				t.Errorf("%s:%d: a flag's doc comment holds backquotes (they become its value name in --help): %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

// Command helppreview prints what `dagger call --help` shows for the module, read from the module's
// source the way Dagger's Go codegen reads it: the constructor New's arguments become the top-level
// flags, the methods of the main object the functions, doc comments their descriptions, and the
// +optional/+default pragmas the flags' defaults. With -function NAME it prints that function's help.
// No engine is needed: use it to review the module's table of contents.
//
//	go run ./hack/helppreview [-dir ci] [-function deploy]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

func main() {
	dir := flag.String("dir", "ci", "module source directory")
	fn := flag.String("function", "", "print the help of this function (kebab-case)")
	flag.Parse()
	m, err := Load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helppreview:", err)
		os.Exit(1)
	}
	if err := m.Print(os.Stdout, *fn); err != nil {
		fmt.Fprintln(os.Stderr, "helppreview:", err)
		os.Exit(1)
	}
}

// Module is the module's API as the codegen sees it.
type Module struct {
	Doc       string
	Args      []Arg // the constructor's
	Functions []Function
}

// Function is one function of the main object.
type Function struct {
	Name, Doc, Returns string
	Args               []Arg
	Pragmas            []string
}

// Arg is one argument (a flag).
type Arg struct {
	Name, Type, Doc, Default string
	Optional                 bool
}

var pragma = regexp.MustCompile(`^\+(\w+)(?:=(.*))?$`)

// Load parses the module's non-test Go files.
func Load(dir string) (*Module, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go") && !strings.HasSuffix(fi.Name(), ".gen.go")
	}, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	m := &Module{}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			cmap := ast.NewCommentMap(fset, f, f.Comments)
			if f.Doc != nil && m.Doc == "" {
				m.Doc = f.Doc.Text()
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || !fd.Name.IsExported() {
					continue
				}
				switch {
				case fd.Recv == nil && fd.Name.Name == "New":
					m.Args = args(fd, cmap)
				case fd.Recv != nil && recvName(fd) == "Wanderlust":
					doc, pragmas := docOf(fd.Doc)
					fn := Function{Name: kebab(fd.Name.Name), Doc: doc, Pragmas: pragmas, Args: args(fd, cmap)}
					if fd.Type.Results != nil && len(fd.Type.Results.List) > 0 {
						fn.Returns = typeName(fd.Type.Results.List[0].Type)
					}
					m.Functions = append(m.Functions, fn)
				}
			}
		}
	}
	sort.Slice(m.Functions, func(i, j int) bool { return m.Functions[i].Name < m.Functions[j].Name })
	return m, nil
}

func recvName(fd *ast.FuncDecl) string {
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// args reads a function's parameters (after a context) with their comments and pragmas.
func args(fd *ast.FuncDecl, cmap ast.CommentMap) []Arg {
	var out []Arg
	for _, f := range fd.Type.Params.List {
		typ := typeName(f.Type)
		if typ == "context.Context" {
			continue
		}
		doc, pragmas := docOf(f.Doc)
		if f.Doc == nil {
			if groups := cmap[f]; len(groups) > 0 {
				doc, pragmas = docOf(groups[0])
			}
		}
		for _, n := range f.Names {
			a := Arg{Name: "--" + kebab(n.Name), Type: typ, Doc: doc}
			for _, p := range pragmas {
				if m := pragma.FindStringSubmatch(p); m != nil {
					switch m[1] {
					case "optional":
						a.Optional = true
					case "default", "defaultPath":
						a.Default, a.Optional = m[2], true
					}
				}
			}
			out = append(out, a)
		}
	}
	return out
}

// docOf splits a comment group into its text and its +pragmas.
func docOf(g *ast.CommentGroup) (string, []string) {
	if g == nil {
		return "", nil
	}
	var text, pragmas []string
	for _, l := range strings.Split(g.Text(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "+") {
			pragmas = append(pragmas, strings.TrimSpace(l))
			continue
		}
		text = append(text, l)
	}
	return strings.TrimSpace(strings.Join(text, "\n")), pragmas
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return map[string]string{"string": "String", "int": "Int", "bool": "Boolean", "float64": "Float"}[t.Name] + map[bool]string{true: t.Name}[!strings.Contains("string int bool float64", t.Name)]
	case *ast.StarExpr:
		return typeName(t.X)
	case *ast.SelectorExpr:
		if x, ok := t.X.(*ast.Ident); ok && x.Name == "context" {
			return "context.Context"
		}
		return t.Sel.Name
	case *ast.ArrayType:
		return "[]" + typeName(t.Elt)
	}
	return "?"
}

// kebab turns a Go name into the CLI's: DegradedGrace → degraded-grace, SMTPHost → smtp-host.
func kebab(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('-')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// firstSentence is what the function list shows of a description.
func firstSentence(doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	if i := strings.Index(doc, ". "); i >= 0 {
		doc = doc[:i+1]
	}
	if r := []rune(doc); len(r) > 110 {
		doc = string(r[:109]) + "…"
	}
	return doc
}

func (a Arg) line() string {
	s := fmt.Sprintf("      %-26s %-9s %s", a.Name, a.Type, strings.Join(strings.Fields(a.Doc), " "))
	switch {
	case a.Default != "":
		s += " [default: " + a.Default + "]"
	case !a.Optional:
		s += " [required]"
	}
	return s
}

// Print writes the help of the module, or of one function.
func (m *Module) Print(w io.Writer, function string) error {
	if function != "" {
		for _, f := range m.Functions {
			if f.Name == function {
				fmt.Fprintf(w, "%s\n\nUSAGE\n  dagger call [constructor flags] %s [arguments]\n\nARGUMENTS\n", strings.TrimSpace(f.Doc), f.Name)
				for _, a := range f.Args {
					fmt.Fprintln(w, a.line())
				}
				return nil
			}
		}
		return fmt.Errorf("no function %q", function)
	}
	fmt.Fprintf(w, "%s\nUSAGE\n  dagger call [options] [arguments] <function>\n\nFUNCTIONS\n", firstParagraph(m.Doc))
	for _, f := range m.Functions {
		fmt.Fprintf(w, "  %-16s %s\n", f.Name, firstSentence(f.Doc))
	}
	fmt.Fprintln(w, "\nARGUMENTS")
	for _, a := range m.Args {
		fmt.Fprintln(w, a.line())
	}
	fmt.Fprintln(w, "\nUse \"dagger call [options] <function> --help\" for more information about a function.")
	return nil
}

func firstParagraph(doc string) string {
	p, _, _ := strings.Cut(doc, "\n\n")
	return p + "\n"
}

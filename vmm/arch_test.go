package vmm_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestArchitecture: package vmm is the core; only cmd/vmm touches flags,
// the environment and the process's exit, and the core depends on no
// command or CLI library.
func TestArchitecture(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/buildledger/buildledger/vmm").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range []string{"github.com/buildledger/buildledger/cmd", "github.com/spf13/cobra", "github.com/spf13/pflag"} {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("vmm depends on %s", dep)
			}
		}
	}
	files, _ := filepath.Glob("*.go")
	forbidden := map[string]bool{"os.Exit": true, "os.Getenv": true, "os.LookupEnv": true, "os.Environ": true, "slog.SetDefault": true}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && forbidden[id.Name+"."+sel.Sel.Name] {
					t.Errorf("%s: %s.%s in the core", fset.Position(n.Pos()), id.Name, sel.Sel.Name)
				}
			}
			return true
		})
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "flag" {
				t.Errorf("%s imports flag", name)
			}
		}
	}
}

package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDegradedReasonsAreDocumented: every reason the reconciler gives a
// Degraded problem (p.problem(v1alpha1.ReasonX, ...), or the reason field
// of an optional kind, reason: v1alpha1.ReasonX) has its row in
// docs/troubleshooting.md's table of conditions, so a user who sees it
// learns what it means.
func TestDegradedReasonsAreDocumented(t *testing.T) {
	values := reasonValues(t, filepath.Join("..", "api", "v1alpha1", "conditions.go"))
	used := map[string]bool{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`(?:\bproblem\(|\breason:\s*)v1alpha1\.(Reason\w+)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 5 {
		t.Fatalf("found only %d reasons given to problem(): the pattern no longer matches the code", len(used))
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range used {
		v, ok := values[name]
		if !ok {
			t.Errorf("%s is not a constant of api/v1alpha1/conditions.go", name)
			continue
		}
		if !strings.Contains(string(doc), "| Degraded / `"+v+"` |") {
			t.Errorf("Degraded reason %s (%s) has no row in docs/troubleshooting.md", v, name)
		}
	}
}

// reasonValues reads the string constants of a Go file.
func reasonValues(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if i < len(vs.Values) {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("%s: %s: %v", path, name.Name, err)
					}
					out[name.Name] = v
				}
			}
		}
		return true
	})
	return out
}

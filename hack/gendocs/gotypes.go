package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// goField is one JSON field of a Go struct in api/.
type goField struct {
	json     string // JSON name
	elem     string // element type name, without package, pointer or slice
	list     bool   // a slice of elem
	local    bool   // elem is a struct defined in the same package
	external string // "core/v1 Toleration" for Kubernetes types worth naming
}

// packages maps import names in api/ to API groups, for naming Kubernetes
// types in the reference.
var packages = map[string]string{"corev1": "core/v1", "metav1": "meta/v1"}

// parseGoTypes returns the JSON fields of every struct type declared in
// the Go files of dir, in declaration order. Inline (embedded) fields are
// left out: they are TypeMeta and ObjectMeta.
func parseGoTypes(dir string) (map[string][]goField, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	structs := map[string]*ast.StructType{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") || strings.HasPrefix(filepath.Base(path), "zz_") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
				}
			}
			return true
		})
	}
	out := map[string][]goField{}
	for name, st := range structs {
		for _, f := range st.Fields.List {
			gf, ok := fieldOf(f, structs)
			if ok {
				out[name] = append(out[name], gf)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no struct types", dir)
	}
	return out, nil
}

func fieldOf(f *ast.Field, structs map[string]*ast.StructType) (goField, bool) {
	if f.Tag == nil || len(f.Names) == 0 {
		return goField{}, false
	}
	tag, err := strconv.Unquote(f.Tag.Value)
	if err != nil {
		return goField{}, false
	}
	name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
	if name == "" || name == "-" {
		return goField{}, false
	}
	gf := goField{json: name}
	t := f.Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.ArrayType:
			gf.list = true
			t = x.Elt
			continue
		}
		break
	}
	switch x := t.(type) {
	case *ast.Ident:
		gf.elem = x.Name
		_, gf.local = structs[x.Name]
	case *ast.SelectorExpr:
		gf.elem = x.Sel.Name
		if pkg, ok := x.X.(*ast.Ident); ok {
			if group, ok := packages[pkg.Name]; ok && !isScalar(x.Sel.Name) {
				gf.external = group + " " + x.Sel.Name
			}
		}
	case *ast.MapType:
		gf.elem = "map"
	}
	return gf, true
}

// isScalar reports the Kubernetes types that are plain strings or numbers
// in the schema, named by their schema type instead.
func isScalar(name string) bool {
	switch name {
	case "PullPolicy", "ServiceType", "Duration", "Time", "Quantity":
		return true
	}
	return false
}

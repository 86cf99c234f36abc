//go:build external

package chart_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// operatorFlags parses cmd/bollard-operator/main.go and returns the flags
// it defines with the standard flag package (flag.String("name", ...),
// flag.StringVar(&v, "name", ...), ...).
func operatorFlags(t *testing.T) map[string]bool {
	t.Helper()
	path := filepath.Join(root(t), "cmd", "bollard-operator", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "flag" {
			return true
		}
		arg := call.Args[0]
		if strings.HasSuffix(sel.Sel.Name, "Var") {
			arg = call.Args[1]
		}
		if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if name, err := strconv.Unquote(lit.Value); err == nil {
				flags[name] = true
			}
		}
		return true
	})
	if len(flags) == 0 {
		t.Fatalf("%s defines no flags that this test can find", path)
	}
	return flags
}

// operatorContainer returns the single container of the single Deployment.
func operatorContainer(t *testing.T, deployments []object) (pod, container map[string]any) {
	t.Helper()
	if len(deployments) != 1 {
		t.Fatalf("want 1 Deployment, got %d", len(deployments))
	}
	spec := dig(deployments[0], "spec", "template", "spec").(map[string]any)
	cs := spec["containers"].([]any)
	if len(cs) != 1 {
		t.Fatalf("want 1 container in the operator Deployment, got %d", len(cs))
	}
	return spec, cs[0].(map[string]any)
}

// containerFlags returns the flag names (without "--" and "=value") the
// operator container is started with.
func containerFlags(t *testing.T, deployments []object) []string {
	t.Helper()
	_, c := operatorContainer(t, deployments)
	var out []string
	args, _ := c["args"].([]any)
	for _, a := range args {
		s, _ := a.(string)
		if name, ok := strings.CutPrefix(s, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			out = append(out, name)
		}
	}
	return out
}

// dig walks nested maps.
func dig(v any, keys ...string) any {
	if o, ok := v.(object); ok {
		v = map[string]any(o)
	}
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// grants is a set of "scope|apiGroup|resource|verb" permissions.
type grants map[string]bool

// permissions returns what the bindings give the ServiceAccount of the
// operator Deployment. Namespaced grants are keyed "namespace:<ns>" for
// the release namespace as "namespace:self", so that installs into
// different namespaces compare.
func permissions(t *testing.T, objs []object) grants {
	t.Helper()
	pod, _ := operatorContainer(t, byKind(objs, "Deployment"))
	sa, _ := pod["serviceAccountName"].(string)
	saNS, _ := dig(byKind(objs, "Deployment")[0], "metadata", "namespace").(string)
	roles := map[string]object{}
	for _, kind := range []string{"Role", "ClusterRole"} {
		for _, r := range byKind(objs, kind) {
			ns, _ := dig(r, "metadata", "namespace").(string)
			roles[kind+"/"+ns+"/"+r.name()] = r
		}
	}
	g := grants{}
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, b := range byKind(objs, kind) {
			if !bindsTo(b, sa, saNS) {
				continue
			}
			ns, _ := dig(b, "metadata", "namespace").(string)
			refKind, _ := dig(b, "roleRef", "kind").(string)
			refName, _ := dig(b, "roleRef", "name").(string)
			roleNS := ns
			if refKind == "ClusterRole" {
				roleNS = ""
			}
			role, ok := roles[refKind+"/"+roleNS+"/"+refName]
			if !ok {
				t.Errorf("%s %s refers to %s %s, which the install does not create", kind, b.name(), refKind, refName)
				continue
			}
			scope := "cluster"
			if kind == "RoleBinding" {
				scope = "namespace:" + strings.Replace(ns, saNS, "self", 1)
			}
			addRules(g, scope, role["rules"])
		}
	}
	return g
}

func bindsTo(binding object, sa, ns string) bool {
	subjects, _ := binding["subjects"].([]any)
	for _, s := range subjects {
		m, _ := s.(map[string]any)
		if m["kind"] == "ServiceAccount" && m["name"] == sa && m["namespace"] == ns {
			return true
		}
	}
	return false
}

func addRules(g grants, scope string, rules any) {
	list, _ := rules.([]any)
	for _, r := range list {
		m, _ := r.(map[string]any)
		for _, group := range strs(m["apiGroups"]) {
			for _, res := range strs(m["resources"]) {
				for _, verb := range strs(m["verbs"]) {
					g[scope+"|"+group+"|"+res+"|"+verb] = true
				}
			}
		}
	}
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// aggregated returns the grants of the ClusterRoles aggregated into the
// built-in role named by label (aggregate-to-edit, aggregate-to-view).
func aggregated(objs []object, label string) grants {
	g := grants{}
	for _, r := range byKind(objs, "ClusterRole") {
		labels, _ := dig(r, "metadata", "labels").(map[string]any)
		if labels["rbac.authorization.k8s.io/"+label] == "true" {
			addRules(g, "cluster", r["rules"])
		}
	}
	return g
}

func diffGrants(a, b grants) (onlyA, onlyB []string) {
	for k := range a {
		if !b[k] {
			onlyA = append(onlyA, k)
		}
	}
	for k := range b {
		if !a[k] {
			onlyB = append(onlyB, k)
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return onlyA, onlyB
}

// TestKustomizeDefaultMatchesChart builds config/default and checks that it
// installs what the chart installs with its default values: the same kinds
// of objects, the same permissions for the operator and for the aggregated
// roles, and an operator container started and secured the same way.
func TestKustomizeDefaultMatchesChart(t *testing.T) {
	out, err := run(t, nil, tool(t, "kustomize"), "build", "config/default")
	if err != nil {
		t.Fatal(err)
	}
	kust := parseManifests(t, out)
	out, err = helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}
	chart := parseManifests(t, out)

	t.Run("kinds", func(t *testing.T) {
		kinds := func(objs []object, skip string) []string {
			var ks []string
			for _, o := range objs {
				if k := o.kind(); k != skip && !slices.Contains(ks, k) {
					ks = append(ks, k)
				}
			}
			sort.Strings(ks)
			return ks
		}
		// Helm does not create the release namespace (--create-namespace does).
		if k, c := kinds(kust, "Namespace"), kinds(chart, ""); !reflect.DeepEqual(k, c) {
			t.Errorf("config/default creates %v, the chart %v", k, c)
		}
	})
	for name, get := range map[string]func([]object) grants{
		"operator permissions": func(o []object) grants { return permissions(t, o) },
		"aggregate-to-edit":    func(o []object) grants { return aggregated(o, "aggregate-to-edit") },
		"aggregate-to-view":    func(o []object) grants { return aggregated(o, "aggregate-to-view") },
	} {
		t.Run(name, func(t *testing.T) {
			k, c := get(kust), get(chart)
			if len(k) == 0 {
				t.Fatal("config/default grants nothing")
			}
			if onlyK, onlyC := diffGrants(k, c); len(onlyK)+len(onlyC) > 0 {
				t.Errorf("only in config/default: %v\nonly in the chart: %v", onlyK, onlyC)
			}
		})
	}
	t.Run("operator container", func(t *testing.T) {
		kpod, kc := operatorContainer(t, byKind(kust, "Deployment"))
		cpod, cc := operatorContainer(t, byKind(chart, "Deployment"))
		for _, key := range []string{"command", "livenessProbe", "readinessProbe", "securityContext"} {
			if !reflect.DeepEqual(kc[key], cc[key]) {
				t.Errorf("container %s: config/default %v, chart %v", key, kc[key], cc[key])
			}
		}
		if !reflect.DeepEqual(kpod["securityContext"], cpod["securityContext"]) {
			t.Errorf("pod securityContext: config/default %v, chart %v", kpod["securityContext"], cpod["securityContext"])
		}
		chartFlags := containerFlags(t, byKind(chart, "Deployment"))
		defined := operatorFlags(t)
		for _, f := range containerFlags(t, byKind(kust, "Deployment")) {
			if !defined[f] {
				t.Errorf("config/default passes --%s, which cmd/bollard-operator does not define", f)
			}
			if !slices.Contains(chartFlags, f) {
				t.Errorf("config/default passes --%s, the chart does not", f)
			}
		}
	})
}

// makeBuildOutputs returns binary name -> package for every `-o bin/NAME
// ./cmd/PKG` in the recipe of the Makefile's build target.
func makeBuildOutputs(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`-o bin/(\S+) (\./cmd/\S+)`)
	out := map[string]string{}
	inBuild := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "build:"):
			inBuild = true
		case inBuild && strings.HasPrefix(line, "\t"):
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				out[m[1]] = m[2]
			}
		default:
			inBuild = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("Makefile: found no `-o bin/NAME ./cmd/PKG` in the build target")
	}
	return out
}

// TestDockerfileCopiesBuildOutputs checks that the image gets exactly the
// binaries `make build` produces, on the PATH, and runs as non-root, and
// that the chart's operator command is one of them.
func TestDockerfileCopiesBuildOutputs(t *testing.T) {
	built := makeBuildOutputs(t)
	for name, pkg := range built {
		if filepath.Base(pkg) != name {
			t.Errorf("make build writes %s to bin/%s: binaries are named after their cmd/ directory", pkg, name)
		}
	}
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	copyRe := regexp.MustCompile(`(?m)^COPY\s+--from=\S+\s+/src/bin/(\S+)\s+(\S+)\s*$`)
	copied := map[string]string{}
	for _, m := range copyRe.FindAllStringSubmatch(string(b), -1) {
		copied[m[1]] = m[2]
	}
	for name := range built {
		dest, ok := copied[name]
		switch {
		case !ok:
			t.Errorf("Dockerfile does not copy bin/%s, which make build produces", name)
		case dest != "/usr/local/bin/"+name && dest != "/usr/local/bin/":
			t.Errorf("Dockerfile copies bin/%s to %s; the chart runs it by name from /usr/local/bin", name, dest)
		}
	}
	for name := range copied {
		if _, ok := built[name]; !ok {
			t.Errorf("Dockerfile copies bin/%s, which make build does not produce", name)
		}
	}
	if !regexp.MustCompile(`(?m)^RUN\s+.*make build\b`).Match(b) {
		t.Error("Dockerfile does not run `make build`: the image would not hold what the Makefile builds")
	}
	if m := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(string(b), -1); len(m) == 0 ||
		strings.HasPrefix(m[len(m)-1][1], "0") || strings.HasPrefix(m[len(m)-1][1], "root") {
		t.Error("Dockerfile: the final stage must run as a non-root USER")
	}
	out, err := helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}
	_, c := operatorContainer(t, byKind(parseManifests(t, out), "Deployment"))
	cmd := strs(c["command"])
	if len(cmd) == 0 || built[filepath.Base(cmd[0])] == "" {
		t.Errorf("the chart runs %v, which is not a binary of the image (%v)", cmd, built)
	}
}

// TestWatchNamespacesGrants: with watchNamespaces the operator's rules are
// Roles in those namespaces, and its only cluster-wide grant is the get
// on Nodes that moving members off cordoned nodes needs (a Role cannot
// grant a cluster-scoped resource); without it, the ClusterRole has it.
func TestWatchNamespacesGrants(t *testing.T) {
	values, err := filepath.Abs(filepath.Join("testdata", "values", "watch-namespaces.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := helmTemplate(t, "--values", values)
	if err != nil {
		t.Fatal(err)
	}
	g := permissions(t, parseManifests(t, out))
	var cluster []string
	for k := range g {
		if strings.HasPrefix(k, "cluster|") {
			cluster = append(cluster, k)
		}
	}
	if !slices.Equal(cluster, []string{"cluster||nodes|get"}) {
		t.Errorf("cluster-wide grants with watchNamespaces: %v, want only the get on nodes", cluster)
	}
	out, err = helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}
	if !permissions(t, parseManifests(t, out))["cluster||nodes|get"] {
		t.Error("the default install does not let the operator get nodes")
	}
}

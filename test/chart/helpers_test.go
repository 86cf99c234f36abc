//go:build external

package chart_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/test/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current chart")

const (
	chartDir = "charts/bollard-operator"
	// kubeVersion is what `helm template` assumes; the chart requires a
	// recent cluster (Chart.yaml kubeVersion).
	kubeVersion = "1.37.2"
	release     = "bollard"
	namespace   = "bollard-system"
)

// root is the repository root; every path in these tests is relative to it.
func root(t *testing.T) string {
	t.Helper()
	dir, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// tool returns bin/<name>, which the Makefile installs (`make helm`,
// `make kustomize`; `make test` depends on both). A missing tool fails the
// test: a CI run that skipped it would pass having checked nothing.
func tool(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(root(t), "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run `make %s` (or `make test`, which installs it): %v", p, name, err)
	}
	return p
}

// run runs a command in the repository root and returns its stdout; the
// error carries stderr.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// helm runs bin/helm with its cache, config and data in a temporary
// directory, so tests never read or write the user's Helm state.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	env := []string{
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
	return run(t, env, tool(t, "helm"), args...)
}

// helmTemplate renders the chart as `helm install bollard -n bollard-system`
// would, with the extra arguments (--values, --set) given.
func helmTemplate(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir, "--namespace", namespace,
		"--kube-version", kubeVersion}, extra...)
	return helm(t, args...)
}

// object is one parsed manifest.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// parseManifests splits a multi-document YAML stream into objects,
// dropping empty documents.
func parseManifests(t *testing.T, s string) []object {
	t.Helper()
	var out []object
	for _, doc := range strings.Split("\n"+s, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("parsing manifest: %v\n%s", err, doc)
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
	return out
}

// byKind returns the objects of one kind.
func byKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test -tags external ./test/chart -update` to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the rendered chart; review the change and run `go test -tags external ./test/chart -update`:\n%s",
			path, lineDiff(string(want), got))
	}
}

// lineDiff is a short, dependency-free report of the first differing lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl == gl {
			continue
		}
		fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, wl, gl)
		if shown++; shown == 10 {
			b.WriteString("  ...\n")
			break
		}
	}
	return b.String()
}

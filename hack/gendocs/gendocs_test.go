package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// repoRoot is two levels up from this package (hack/gendocs).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestGeneratedDocsAreCurrent fails when docs/reference is stale: the CRD,
// the API types or broker/config changed without `make docs`.
func TestGeneratedDocsAreCurrent(t *testing.T) {
	stale, err := generate(repoRoot(t), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		t.Errorf("%s is out of date: run `make docs` (go run ./hack/gendocs) and commit it", p)
	}
}

func TestShortDuration(t *testing.T) {
	for in, want := range map[time.Duration]string{
		0:                       "0s",
		50 * time.Millisecond:   "50ms",
		10 * time.Second:        "10s",
		90 * time.Second:        "1m30s",
		2 * time.Minute:         "2m",
		168 * time.Hour:         "168h",
		time.Hour + time.Minute: "1h1m",
	} {
		if got := shortDuration(in); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatInt(t *testing.T) {
	for in, want := range map[int64]string{
		0:        "`0`",
		128:      "`128`",
		10000:    "`10000`",
		1 << 20:  "`1048576` (1 MiB)",
		16 << 20: "`16777216` (16 MiB)",
		3 << 20:  "`3145728`",
	} {
		if got := formatInt(reflect.ValueOf(in)); got != want {
			t.Errorf("formatInt(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"spec.listeners.tls": "speclistenerstls",
		"spec.auth.acl[]":    "specauthacl",
	} {
		if got := anchor(in); got != want {
			t.Errorf("anchor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParseGoTypes checks the structure the CRD reference is built on.
func TestParseGoTypes(t *testing.T) {
	types, err := parseGoTypes(filepath.Join(repoRoot(t), "api", "v1alpha1"))
	if err != nil {
		t.Fatal(err)
	}
	spec := map[string]goField{}
	for _, f := range types["MQTTBrokerSpec"] {
		spec[f.json] = f
	}
	if f := spec["listeners"]; !f.local {
		t.Errorf("spec.listeners: %+v, want a local struct", f)
	}
	if f := spec["tolerations"]; !f.list || f.external != "core/v1 Toleration" {
		t.Errorf("spec.tolerations: %+v, want a list of core/v1 Toleration", f)
	}
	if f := spec["imagePullPolicy"]; f.external != "" {
		t.Errorf("spec.imagePullPolicy: %+v, want a plain string", f)
	}
}

// TestTypeNameAndDefault covers every kind the config schema uses: a map
// is named as one (not as an integer), and its empty default reads as such.
func TestTypeNameAndDefault(t *testing.T) {
	type item struct{ A string }
	for _, c := range []struct {
		v        any
		typ, def string
	}{
		{map[string]string(nil), "map of string to string", "empty"},
		{map[string]int{"a": 1}, "map of string to integer", "`map[a:1]`"},
		{[]item(nil), "list of item", "empty"},
		{uint32(7), "integer", "`7`"},
		{int64(-1), "integer", "`-1`"},
		{true, "bool", "`true`"},
		{"x", "string", "`x`"},
		{1.5, "float64", "`1.5`"},
	} {
		v := reflect.ValueOf(c.v)
		if got := typeName(v.Type()); got != c.typ {
			t.Errorf("typeName(%T) = %q, want %q", c.v, got, c.typ)
		}
		if got := formatDefault(v); got != c.def {
			t.Errorf("formatDefault(%#v) = %q, want %q", c.v, got, c.def)
		}
	}
}

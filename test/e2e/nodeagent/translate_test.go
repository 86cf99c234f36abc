package nodeagent

import (
	"strings"
	"testing"
)

func testRewriter() *Rewriter {
	return NewRewriter([]Mount{
		{ContainerPath: "/etc/bollard", LocalPath: "/w/cfg"},
		{ContainerPath: "/var/lib/bollard", LocalPath: "/w/pv"},
		{ContainerPath: "/var", LocalPath: "/w/var"},
	}, map[int32]int{1883: 20001, 8080: 20002})
}

func TestRewriterString(t *testing.T) {
	r := testRewriter()
	tests := map[string]string{
		":1883":                        "127.0.0.1:20001",
		"0.0.0.0:8080":                 "127.0.0.1:20002",
		"[::]:1883":                    "127.0.0.1:20001",
		"example.com:1883":             "example.com:1883",
		":9999":                        ":9999",
		"/etc/bollard":                 "/w/cfg",
		"/etc/bollard/bollard.yaml":    "/w/cfg/bollard.yaml",
		"/etc/bollardx":                "/etc/bollardx",
		"/var/lib/bollard/data":        "/w/pv/data",
		"/var/other":                   "/w/var/other",
		"--config=/etc/bollard/b.yaml": "--config=/w/cfg/b.yaml",
		"--listen=:1883":               "--listen=127.0.0.1:20001",
		"--allow-anonymous":            "--allow-anonymous",
		"sync":                         "sync",
	}
	for in, want := range tests {
		if got := r.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRewriterYAML(t *testing.T) {
	r := testRewriter()
	in := "listeners:\n  mqtt:\n    address: :1883\nadmin:\n  address: :8080\ndataDir: /var/lib/bollard/data\n" +
		"queues:\n  maxQueuedMessages: 1883\nlogLevel: info\n"
	got := string(mustYAML(t, r, in))
	for _, want := range []string{"address: 127.0.0.1:20001", "address: 127.0.0.1:20002",
		"dataDir: /w/pv/data", "maxQueuedMessages: 1883", "logLevel: info"} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten YAML lacks %q:\n%s", want, got)
		}
	}
	if again := string(mustYAML(t, r, in)); again != got {
		t.Errorf("rewrite is not deterministic:\n%s\n%s", got, again)
	}
	notYAML := []byte("user:$2a$10$abc\n\t: [")
	if got := mustYAML(t, r, string(notYAML)); string(got) != string(notYAML) {
		t.Errorf("non-YAML file changed: %q", got)
	}
}

func mustYAML(t *testing.T, r *Rewriter, in string) []byte {
	t.Helper()
	out, err := r.YAML([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "POD": "p-0"}
	tests := map[string]string{
		"plain":            "plain",
		"$(A)":             "x",
		"--id=$(POD)-$(A)": "--id=p-0-x",
		"$(MISSING)":       "$(MISSING)",
		"$$(A)":            "$(A)",
		"cost $5":          "cost $5",
		"open $(A":         "open $(A",
	}
	for in, want := range tests {
		if got := Expand(in, env); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

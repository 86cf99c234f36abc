package testenv

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrintLogTails(t *testing.T) {
	dir := t.TempDir()
	pods := filepath.Join(dir, "node", "logs")
	if err := os.MkdirAll(pods, 0o755); err != nil {
		t.Fatal(err)
	}
	var long strings.Builder
	for i := range 100 {
		fmt.Fprintf(&long, "line %d\n", i)
	}
	for name, text := range map[string]string{
		"operator.log": long.String(),
		filepath.Join("node", "logs", "ha-0.log"): "one\ntwo\n",
		"notes.txt": "not a log\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	PrintLogTails(&out, dir, 3)
	got := out.String()
	for _, want := range []string{"last 3 lines of operator.log\nline 97\nline 98\nline 99\n", "last 2 lines of node/logs/ha-0.log\none\ntwo\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "line 96") || strings.Contains(got, "not a log") {
		t.Errorf("output has more than the tails of the logs:\n%s", got)
	}
}

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedMonitoringIsCurrent fails when the rules in config/ and the
// chart, or the chart's dashboard, are stale: run `make monitoring`.
func TestGeneratedMonitoringIsCurrent(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	stale, err := generate(root, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		t.Errorf("%s is out of date: run `make monitoring` (go run ./hack/genmonitoring) and commit it", p)
	}
}

//go:build external

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeImage builds the real image as `make image` does (the real
// binaries, from `make build`) and inspects it like TestImage; then runs
// the broker binary taken out of the image's layer.
func TestMakeImage(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bollard-image.tar")
	cmd := exec.Command("make", "-s", "image", "IMAGE_TAR="+out, "VERSION=v0.0.0-imagetest")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, b)
	}
	im := inspect(t, out)
	checkImage(t, im)
	if v := im.config.Config.Labels["org.opencontainers.image.version"]; v != "v0.0.0-imagetest" {
		t.Errorf("version label = %q", v)
	}
	if im.imageName != "ghcr.io/bollard-io/bollard:v0.0.0-imagetest" {
		t.Errorf("image name %q, want the Makefile's IMG (the operator's default broker image)", im.imageName)
	}
	broker := filepath.Join(t.TempDir(), "bollard")
	if err := os.WriteFile(broker, im.contents["/usr/local/bin/bollard"], 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(broker, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "v0.0.0-imagetest") {
		t.Errorf("bollard version from the image: %v: %s", err, b)
	}
}

// Package testenv finds the Kubernetes control-plane binaries that the
// envtest and e2e tiers run (kube-apiserver, etcd, kube-controller-manager,
// kube-scheduler), built by hack/testbin.sh.
//
// A test that needs them fails, never skips, when they are missing: a CI run
// that silently skipped its control-plane tests would pass having tested
// nothing.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the files AssetsDir checks for.
var Binaries = []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"}

// AssetsDir returns the directory holding the control-plane binaries:
// $KUBEBUILDER_ASSETS when set, otherwise the cache that hack/testbin.sh
// fills. It returns an error that says how to get them when they are
// missing.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if err := check(dir); err != nil {
			return "", fmt.Errorf("testenv: KUBEBUILDER_ASSETS=%s: %w", dir, err)
		}
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(root, "hack", "testbin.sh"), "--print-only").Output()
	if err != nil {
		return "", errors.New("testenv: the Kubernetes test binaries are missing: run `make testbin` " +
			"(builds kube-apiserver, etcd, kube-controller-manager and kube-scheduler from the Go module " +
			"proxy, ~7 minutes cold) or `make test`, or set KUBEBUILDER_ASSETS to a directory holding them")
	}
	dir := strings.TrimSpace(string(out))
	return dir, check(dir)
}

func check(dir string) error {
	for _, b := range Binaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil {
			return fmt.Errorf("missing %s: %w", b, err)
		}
		if fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", b)
		}
	}
	return nil
}

// RepoRoot returns the root of the Bollard checkout (the directory holding
// go.mod), found from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/e2e/cluster"
	"github.com/bollard-io/bollard/test/testenv"
)

// standinEnv, set in a container's env, makes this test binary act as the
// stand-in process of TestStatefulSetStandIn instead of running tests.
const standinEnv = "BOLLARD_E2E_STANDIN"

// keepEnv, set to any value, keeps the work directory (logs of every
// component and pod) even when the tests pass.
const keepEnv = "BOLLARD_E2E_KEEP"

// standinImage is the image the node agent maps to this test binary.
const standinImage = "e2e/standin"

// testCluster is the cluster every test of this binary shares.
var testCluster *cluster.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(standinEnv) == "1" {
		os.Exit(standinMain(os.Args[1:]))
	}
	os.Exit(run(m))
}

// run starts the shared cluster, runs the tests and stops it. A cluster
// that cannot start fails the binary: the e2e tier never skips.
func run(m *testing.M) int {
	start := time.Now()
	dir, err := os.MkdirTemp("", "bollard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	c, err := startCluster(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: FAIL: starting the cluster:", err)
		fmt.Fprintln(os.Stderr, "e2e: logs in", dir)
		return 1
	}
	testCluster = c
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %s (work dir %s)\n", time.Since(start).Round(100*time.Millisecond), dir)
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the cluster:", err)
		code = 1
	}
	if code != 0 {
		// CI keeps this output, not the machine: the end of every log.
		testenv.PrintLogTails(os.Stderr, dir, 60)
	}
	if code == 0 && os.Getenv(keepEnv) == "" {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "e2e: logs kept in", dir)
	}
	fmt.Fprintf(os.Stderr, "e2e: wall time %s\n", time.Since(start).Round(100*time.Millisecond))
	return code
}

func startCluster(dir string) (*cluster.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := testenv.AssetsDir(); err != nil { // before the build: fail fast
		return nil, err
	}
	bin, err := cluster.BuildBollard(ctx, dir)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "logs", "harness.log"))
	if err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	c, err := cluster.Start(ctx, cluster.Options{
		WorkDir: filepath.Join(dir, "cluster"),
		Logger:  slog.New(slog.NewTextHandler(logf, nil)),
		Agent:   nodeagentOptions(bin, self),
	})
	if err != nil {
		return nil, err
	}
	if err := c.StartOperator(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

//go:build loadbench

package load

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoadBench runs the full comparison with mosquitto: every
// scenario against bollard (built from this checkout, sync durability)
// and Debian's mosquitto, and prints the table. `make bench` runs it.
//
// Knobs (environment):
//
//	LOAD_SIZE=full|short|tiny   sizes (default full; -short means short)
//	LOAD_ONLY=regexp            run only the scenarios whose name matches
//	LOAD_BOLLARD_BIN=path       run this bollard binary instead of building one
//	LOAD_BOLLARD=process|inprocess   inprocess runs the engine in the test
//	                            process, so -cpuprofile profiles the broker
//	LOAD_BROKERS=bollard,mosquitto   which brokers to run (default all)
//	LOAD_BASELINE_BIN=path      also run this bollard binary (an earlier build),
//	                            alternating, as the report's baseline column
//	LOAD_INFLIGHT=128           both brokers' outbound inflight window
//	LOAD_REPEAT=N               alternating runs per scenario and broker (full: 3)
//	LOAD_REPORT=file            also write the Markdown table there
//	LOAD_BOLLARD_MEMORY_LIMIT=N  the broker's limits.memoryLimit: bytes, or e.g. 1GiB (default 0: none)
//	LOAD_CPU_LIMIT=cores        run each broker process under a CFS quota of that
//	                            many cores, as a Kubernetes CPU limit (root, cgroups;
//	                            default none: every process shares the machine)
//	LOAD_RESTART_PER_SESSION=N  messages queued per session in the restart
//	                            scenario (full: 100, so 1,000,000 in all)
//	LOAD_HEAPPROFILE=path       with LOAD_BOLLARD=inprocess, write the heap profile
//	                            after the restart scenario's queueing to path-restart
func TestLoadBench(t *testing.T) {
	sz := benchSizes(t)
	inflight := envInt(t, "LOAD_INFLIGHT", 128)
	bollard := bollardFactory(t, inflight)
	mosq := FindMosquitto()
	if mosq == "" {
		t.Fatal("mosquitto is not installed: run hack/install-test-deps.sh (make bench does)")
	}
	all := []Factory{bollard, MosquittoFactory(mosq, inflight)}
	if bin := os.Getenv("LOAD_BASELINE_BIN"); bin != "" {
		all = append(all, BaselineFactory(bin, inflight))
	}
	s := &Suite{
		Sizes: sz, Factories: pickBrokers(t, all...),
		Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
	}
	if only := os.Getenv("LOAD_ONLY"); only != "" {
		re := regexp.MustCompile(only)
		s.Only = re.MatchString
	}
	begin := time.Now()
	rep, err := s.Run(context.Background())
	table := rep.Markdown()
	fmt.Printf("\nLoad scenarios (%s sizes, inflight %d, %s):\n\n%s\n", sz.Name, inflight, time.Since(begin).Round(time.Second), table)
	if path := os.Getenv("LOAD_REPORT"); path != "" {
		if werr := os.WriteFile(path, []byte(table+"\n"), 0o644); werr != nil {
			t.Error(werr)
		}
	}
	if err != nil {
		t.Error(err)
	}
}

func pickBrokers(t *testing.T, all ...Factory) []Factory {
	want := os.Getenv("LOAD_BROKERS")
	if want == "" {
		return all
	}
	var out []Factory
	for _, f := range all {
		if slices.Contains(strings.Split(want, ","), f.Name) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("LOAD_BROKERS=%q names none of bollard, mosquitto, baseline", want)
	}
	return out
}

func benchSizes(t *testing.T) Sizes {
	name := os.Getenv("LOAD_SIZE")
	if name == "" {
		name = "full"
		if testing.Short() {
			name = "short"
		}
	}
	sz, err := SizesByName(name)
	if err != nil {
		t.Fatal(err)
	}
	sz.RestartPerSession = envInt(t, "LOAD_RESTART_PER_SESSION", sz.RestartPerSession)
	sz.Repeat = envInt(t, "LOAD_REPEAT", sz.Repeat)
	return sz
}

func bollardFactory(t *testing.T, inflight int) Factory {
	switch mode := os.Getenv("LOAD_BOLLARD"); mode {
	case "", "process":
		return BollardFactory(bollardBinary(t, "LOAD_BOLLARD_BIN"), inflight)
	case "inprocess":
		return InProcessFactory(inflight)
	default:
		t.Fatalf("LOAD_BOLLARD=%q: want process or inprocess", mode)
		return Factory{}
	}
}

// bollardBinary is the bollard binary a benchmark runs: the one the
// environment variable env names, or one built from this checkout.
func bollardBinary(t *testing.T, env string) string {
	if bin := os.Getenv(env); bin != "" {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := BuildBollard(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func envInt(t *testing.T, key string, def int) int {
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", key, s)
	}
	return n
}

package load

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/poll"
	"github.com/bollard-io/bollard/test/testenv"
)

// TestMain refuses settings the benchmarks would otherwise read as
// their default: a run measured in another configuration than the one
// asked for is worse than no run.
func TestMain(m *testing.M) {
	if _, err := ParseMemoryLimit(os.Getenv("LOAD_BOLLARD_MEMORY_LIMIT")); err != nil {
		fmt.Fprintf(os.Stderr, "LOAD_BOLLARD_MEMORY_LIMIT: %v\n", err)
		os.Exit(2)
	}
	if _, err := ParseCPULimit(os.Getenv("LOAD_CPU_LIMIT")); err != nil {
		fmt.Fprintf(os.Stderr, "LOAD_CPU_LIMIT: %v\n", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// TestParseMemoryLimit: sizes in bytes and binary units; anything else is
// refused, not read as no limit.
func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "0": 0, "1073741824": 1 << 30, "1GiB": 1 << 30, "512MiB": 512 << 20, "2Gi": 2 << 30, "64KiB": 64 << 10} {
		if got, err := ParseMemoryLimit(in); err != nil || got != want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1GB", "1 GiB", "1.5GiB", "-1", "GiB", "lots", "9999999999GiB"} {
		if got, err := ParseMemoryLimit(in); err == nil {
			t.Errorf("ParseMemoryLimit(%q) = %d, want an error", in, got)
		}
	}
}

// TestParseCPULimit: cores as a decimal; anything else is refused.
func TestParseCPULimit(t *testing.T) {
	for in, want := range map[string]float64{"": 0, "0.5": 0.5, "1": 1, "2.25": 2.25} {
		if got, err := ParseCPULimit(in); err != nil || got != want {
			t.Errorf("ParseCPULimit(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "500m", "half", "NaN", "1e9"} {
		if got, err := ParseCPULimit(in); err == nil {
			t.Errorf("ParseCPULimit(%q) = %v, want an error", in, got)
		}
	}
}

// TestSmoke runs every scenario at tiny sizes against the Bollard engine
// in process, and against mosquitto when it is installed and the build has
// the external tag (`make test`, not `make test-fast`), so the load
// generator keeps working between `make bench` runs.
func TestSmoke(t *testing.T) {
	factories := []Factory{InProcessFactory(128)}
	if !testenv.External {
		t.Log("built without -tags external: smoke test against Bollard only")
	} else if bin := FindMosquitto(); bin != "" {
		factories = append(factories, MosquittoFactory(bin, 128))
	} else {
		t.Log("mosquitto not installed (hack/install-test-deps.sh): smoke test against Bollard only")
	}
	s := &Suite{Sizes: TinySizes(), Factories: factories, Logf: t.Logf}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := s.Run(ctx)
	t.Logf("\n%s", rep.Markdown())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if r.Bollard <= 0 && r.Unit != "MB" && r.Unit != "KB" { // no RSS in process
			t.Errorf("%s, %s: no Bollard figure", r.Scenario, r.Metric)
		}
	}
}

func TestRowGoals(t *testing.T) {
	tests := map[string]struct {
		row   Row
		ratio float64
		met   string
	}{
		"faster":         {Row{Bollard: 200, Mosquitto: 100, Goal: RatioAtLeast1}, 2, "yes"},
		"slower":         {Row{Bollard: 50, Mosquitto: 100, Goal: RatioAtLeast1}, 0.5, "NO"},
		"lower latency":  {Row{Bollard: 1, Mosquitto: 2, Goal: RatioAtMost1}, 0.5, "yes"},
		"higher latency": {Row{Bollard: 3, Mosquitto: 2, Goal: RatioAtMost1}, 1.5, "NO"},
		"under limit":    {Row{Bollard: 2.5, Mosquitto: 1, Goal: BelowLimit, Limit: 3}, 2.5, "yes"},
		"over limit":     {Row{Bollard: 120, Goal: BelowLimit, Limit: 100}, math.NaN(), "NO"},
		"no figure":      {Row{Mosquitto: 1, Goal: RatioAtLeast1}, math.NaN(), ""},
		"no goal":        {Row{Bollard: 1, Mosquitto: 1}, 1, ""},
		"half as fast":   {Row{Bollard: 50, Mosquitto: 100, Goal: RatioAtLeast, Limit: 0.5}, 0.5, "yes"},
		"under half":     {Row{Bollard: 40, Mosquitto: 100, Goal: RatioAtLeast, Limit: 0.5}, 0.4, "NO"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.row.Ratio()
			if !(got == tc.ratio || math.IsNaN(got) && math.IsNaN(tc.ratio)) {
				t.Errorf("Ratio = %v, want %v", got, tc.ratio)
			}
			if m := tc.row.Met(); m != tc.met {
				t.Errorf("Met = %q, want %q", m, tc.met)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	rep := &Report{}
	rep.Add(Row{Scenario: "s", Metric: "rate", Unit: "msg/s", Bollard: 123456.7, Mosquitto: 100000, Goal: RatioAtLeast1})
	rep.Add(Row{Scenario: "s", Metric: "mem", Unit: "MB", Bollard: 42.25, Goal: BelowLimit, Limit: 100, Errors: []string{"boom"}})
	got := rep.Markdown()
	for _, want := range []string{
		"| s | rate (msg/s) | 123,457 | 100,000 | 1.23 | ratio >= 1 | yes |",
		"| s | mem (MB) | 42.2 | n/a | n/a | < 100 MB | yes |",
		"- ERROR s, mem: boom",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, got)
		}
	}
}

func TestParseKB(t *testing.T) {
	for in, want := range map[string]int64{"   1234 kB": 1234 << 10, "\t0 kB": 0, "junk": 0} {
		if got := parseKB(in); got != want {
			t.Errorf("parseKB(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestShare(t *testing.T) {
	s := PublishSpec{Publishers: 3, Messages: 10}
	next := 0
	for p := range 3 {
		first, n := s.share(p)
		if first != next {
			t.Errorf("publisher %d starts at %d, want %d", p, first, next)
		}
		next += n
	}
	if next != 10 {
		t.Errorf("shares cover %d messages, want 10", next)
	}
}

// TestLimitCPU: a process moved into its cgroup is held to its quota (the
// kernel throttles a busy loop at a tenth of a core), and the cgroup goes
// once the process has.
func TestLimitCPU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("LOAD_CPU_LIMIT needs root")
	}
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g, err := limitCPU(cmd.Process.Pid, 0.1)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Skipf("no cgroup CPU controller here: %v", err)
	}
	stat := filepath.Join(g.dir, "cpu.stat")
	poll.Wait(t, 10*time.Second, 20*time.Millisecond, "the busy loop throttled", func() bool {
		b, err := os.ReadFile(stat)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "nr_throttled" && f[1] != "0" {
				return true
			}
		}
		return false
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := g.remove(); err != nil {
		t.Fatalf("removing the cgroup after its process: %v", err)
	}
	if exists(g.dir) {
		t.Fatalf("%s left behind", g.dir)
	}
}

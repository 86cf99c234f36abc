//go:build external

package monitoring_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/test/testenv"
)

// promtool finds promtool (Debian's prometheus package, which
// hack/install-test-deps.sh installs); the test fails, not skips, without
// it.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	if !testenv.External {
		t.Fatal("built without the external tag")
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: run hack/install-test-deps.sh (Debian package prometheus)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rulesTest is the part of testdata/rules_test.yaml the checks read.
type rulesTest struct {
	Tests []struct {
		InputSeries []struct {
			Series string `json:"series"`
		} `json:"input_series"`
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestRulesWithPromtool: promtool accepts config/prometheus/rules.yaml and
// the PrometheusRule's rules, and its unit tests pass; every alert fires
// in them, on series the broker exports.
func TestRulesWithPromtool(t *testing.T) {
	root := repoRoot(t)
	rules := filepath.Join(root, "config", "prometheus", "rules.yaml")
	promtool(t, "check", "rules", rules)
	promtool(t, "test", "rules", filepath.Join("testdata", "rules_test.yaml"))

	var spec struct {
		Spec any `json:"spec"`
	}
	readYAML(t, filepath.Join(root, "config", "prometheus", "prometheusrule.yaml"), &spec)
	promtool(t, "check", "rules", writeYAML(t, spec.Spec))

	var rt rulesTest
	readYAML(t, filepath.Join("testdata", "rules_test.yaml"), &rt)
	fired := map[string]bool{}
	exported := allExported(t)
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
		for _, s := range tc.InputSeries {
			names, err := metricNames(s.Series)
			if err != nil || len(names) != 1 {
				t.Errorf("series %q: %v %v", s.Series, names, err)
				continue
			}
			if !exported[names[0]] && !prometheusSeries[names[0]] {
				t.Errorf("testdata/rules_test.yaml: %s is not exported by the broker", names[0])
			}
		}
	}
	for alert := range ruleExprs(t) {
		if !fired[alert] {
			t.Errorf("%s never fires in testdata/rules_test.yaml", alert)
		}
	}
}

// TestDashboardQueriesWithPromtool: every query of the dashboard parses
// (promtool checks them as recording rules, Grafana's variables replaced).
func TestDashboardQueriesWithPromtool(t *testing.T) {
	queries := map[string][]string{}
	panelQueries(t, readDashboard(t).Panels, queries)
	var rules []map[string]string
	n := 0
	for _, exprs := range queries {
		for _, e := range exprs {
			n++
			e = strings.NewReplacer("$__rate_interval", "5m", "$namespace", ".*", "$job", ".*", "$instance", ".*").Replace(e)
			rules = append(rules, map[string]string{"record": fmt.Sprintf("bollard_dashboard:query%d", n), "expr": e})
		}
	}
	out := promtool(t, "check", "rules", writeYAML(t, map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}))
	if !strings.Contains(out, fmt.Sprintf("%d rules found", n)) {
		t.Errorf("promtool checked fewer than the dashboard's %d queries:\n%s", n, out)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func writeYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

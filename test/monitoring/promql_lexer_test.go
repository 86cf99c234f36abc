package monitoring_test

import (
	"fmt"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`up == 0 and on (job, instance) last_over_time(bollard_build_info{job="x"}[1h])`:           "[up bollard_build_info]",
		`sum by (namespace, reason) (rate(bollard_dropped_messages_total{reason=~"a|b"}[5m])) > 0`: "[bollard_dropped_messages_total]",
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="}"}[$__rate_interval]))) > 1e-3`:   "[x_bucket]",
		`max(a{kind="used"} / ignoring (kind) (a{kind="budget"} > 0))`:                             "[a a]",
		`count(x > 0 or on (job) y == 1) or vector(0)`:                                             "[x y]",
		`sum without (pod) (rate(m[5m] offset 1h))`:                                                "[m]",
	} {
		got, err := metricNames(expr)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("metricNames(%s) = %v, %v; want %s", expr, got, err, want)
		}
	}
	for _, bad := range []string{`frobnicate(x)`, `x{a="b"`, `x{a="b}`} {
		if got, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%s) = %v, want an error", bad, got)
		}
	}
}

func TestTemplateQueryNames(t *testing.T) {
	for q, want := range map[string]string{
		`label_values(bollard_build_info{namespace=~"$namespace"}, job)`: "[bollard_build_info]",
		`label_values(bollard_build_info, namespace)`:                    "[bollard_build_info]",
	} {
		got, err := templateQueryNames(q)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("templateQueryNames(%s) = %v, %v; want %s", q, got, err, want)
		}
	}
	if _, err := templateQueryNames("label_names()"); err == nil {
		t.Error("a query the check cannot read passed")
	}
}

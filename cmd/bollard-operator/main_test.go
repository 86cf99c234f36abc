package main

import (
	"strings"
	"testing"
)

func TestNetworkPolicyDefaults(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "from-env")
	d, err := networkPolicyDefaults(false, "", "", "app.kubernetes.io/name=prometheus")
	if err != nil {
		t.Fatal(err)
	}
	if d.Disabled || d.OperatorNamespace != "from-env" {
		t.Errorf("defaults = %+v", d)
	}
	if ns := d.Prometheus.NamespaceSelector; ns == nil || len(ns.MatchLabels)+len(ns.MatchExpressions) != 0 {
		t.Errorf("empty namespace selector = %+v, want {} (every namespace)", ns)
	}
	if pod := d.Prometheus.PodSelector; pod == nil || pod.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
		t.Errorf("pod selector = %+v", pod)
	}

	d, err = networkPolicyDefaults(true, "ops", "kubernetes.io/metadata.name in (monitoring,observability)", "")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Disabled || d.OperatorNamespace != "ops" || d.Prometheus.PodSelector != nil ||
		len(d.Prometheus.NamespaceSelector.MatchExpressions) != 1 {
		t.Errorf("flags = %+v", d)
	}

	cases := map[string][2]string{
		"both empty: every pod":  {"", ""},
		"bad namespace selector": {"a in b", "x=y"},
		"bad pod selector":       {"", "=="},
	}
	for name, c := range cases {
		if _, err := networkPolicyDefaults(false, "ops", c[0], c[1]); err == nil || !strings.Contains(err.Error(), "--prometheus-") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

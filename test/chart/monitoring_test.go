//go:build external

package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMonitoringMatchesConfig: the chart's PrometheusRule holds exactly
// the rules of config/prometheus/rules.yaml, and its dashboard ConfigMap
// exactly config/grafana/bollard-dashboard.json, labelled for Grafana's
// sidecar; both are off by default.
func TestMonitoringMatchesConfig(t *testing.T) {
	out, err := helmTemplate(t)
	if err != nil {
		t.Fatal(err)
	}
	objs := parseManifests(t, out)
	if n := len(byKind(objs, "PrometheusRule")); n != 0 {
		t.Errorf("default values render %d PrometheusRules", n)
	}
	for _, cm := range byKind(objs, "ConfigMap") {
		if _, ok := cm["data"].(map[string]any)["bollard-dashboard.json"]; ok {
			t.Errorf("default values render the dashboard ConfigMap %s", cm.name())
		}
	}

	out, err = helmTemplate(t, "--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	objs = parseManifests(t, out)
	rules := byKind(objs, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules", len(rules))
	}
	var want object
	readYAMLFile(t, filepath.Join(root(t), "config", "prometheus", "rules.yaml"), &want)
	if got := object(rules[0]["spec"].(map[string]any)); !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's PrometheusRule spec differs from config/prometheus/rules.yaml:\n%s", toYAML(t, got))
	}

	var dash map[string]any
	for _, cm := range byKind(objs, "ConfigMap") {
		data, _ := cm["data"].(map[string]any)
		s, ok := data["bollard-dashboard.json"].(string)
		if !ok {
			continue
		}
		labels := cm["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", labels)
		}
		if err := json.Unmarshal([]byte(s), &dash); err != nil {
			t.Fatalf("dashboard ConfigMap: %v", err)
		}
	}
	src, err := os.ReadFile(filepath.Join(root(t), "config", "grafana", "bollard-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wantDash map[string]any
	if err := json.Unmarshal(src, &wantDash); err != nil {
		t.Fatal(err)
	}
	if dash == nil || !reflect.DeepEqual(dash, wantDash) {
		t.Error("the chart's dashboard differs from config/grafana/bollard-dashboard.json (run `make monitoring`)")
	}
}

func readYAMLFile(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

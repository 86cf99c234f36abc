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

// TestKustomizeMonitoring: config/grafana builds the dashboard ConfigMap
// for Grafana's sidecar and config/prometheus the PrometheusRule, with the
// same content as the chart's.
func TestKustomizeMonitoring(t *testing.T) {
	out, err := run(t, nil, tool(t, "kustomize"), "build", "config/grafana")
	if err != nil {
		t.Fatal(err)
	}
	cms := byKind(parseManifests(t, out), "ConfigMap")
	if len(cms) != 1 {
		t.Fatalf("config/grafana builds %d ConfigMaps", len(cms))
	}
	labels := cms[0]["metadata"].(map[string]any)["labels"].(map[string]any)
	data := cms[0]["data"].(map[string]any)
	src, err := os.ReadFile(filepath.Join(root(t), "config", "grafana", "bollard-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if labels["grafana_dashboard"] != "1" || data["bollard-dashboard.json"] != string(src) {
		t.Errorf("config/grafana: labels %v, dashboard equal to the file: %v", labels, data["bollard-dashboard.json"] == string(src))
	}

	out, err = run(t, nil, tool(t, "kustomize"), "build", "config/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	rules := byKind(parseManifests(t, out), "PrometheusRule")
	var want object
	readYAMLFile(t, filepath.Join(root(t), "config", "prometheus", "rules.yaml"), &want)
	if len(rules) != 1 || !reflect.DeepEqual(object(rules[0]["spec"].(map[string]any)), want) {
		t.Errorf("config/prometheus does not build one PrometheusRule holding config/prometheus/rules.yaml")
	}
}

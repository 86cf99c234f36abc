package resources

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

const testImage = "ghcr.io/bollard-io/bollard:v0.1.0"

// goldenToken stands in for the random admin token.
const goldenToken = "golden-admin-token-0123456789abcdef"

// goldenClusterSecret stands in for the random cluster secret.
const goldenClusterSecret = "golden-cluster-secret-0123456789abcdef0123456789"

// loadBroker reads testdata/<name>.input.yaml, a broker as the apiserver
// stores it (defaults applied).
func loadBroker(t *testing.T, name string) *v1alpha1.MQTTBroker {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := &v1alpha1.MQTTBroker{}
	if err := yaml.UnmarshalStrict(data, b); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// children builds every child object of b, keyed by golden file name.
func children(t *testing.T, b *v1alpha1.MQTTBroker, p Params) map[string]any {
	t.Helper()
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := ConfigMap(b, c)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{
		"serviceaccount":      ServiceAccount(b),
		"configmap":           cm,
		"service":             Service(b),
		"service-headless":    HeadlessService(b),
		"statefulset":         StatefulSet(b, c, p),
		"poddisruptionbudget": PodDisruptionBudget(b),
		"service-metrics":     MetricsService(b),
		"secret-admin-token":  AdminTokenSecret(b, goldenToken),
	}
	if Clustered(b) {
		out["secret-cluster"] = ClusterSecret(b, goldenClusterSecret)
	}
	if np := NetworkPolicy(b, p.NetworkPolicy); np != nil {
		out["networkpolicy"] = np
	}
	if sm := ServiceMonitor(b); sm != nil {
		out["servicemonitor"] = sm.Object
	}
	if cert := Certificate(b); cert != nil {
		out["certificate"] = cert.Object
	}
	if pr := PrometheusRule(b); pr != nil {
		out["prometheusrule"] = pr.Object
	}
	return out
}

func TestGolden(t *testing.T) {
	cases := map[string]Params{
		"minimal": {DefaultImage: testImage, NetworkPolicy: NetworkPolicyDefaults{OperatorNamespace: "bollard-system"}},
		// A cluster being formed: its members bootstrap.
		"cluster": {DefaultImage: testImage, NetworkPolicy: NetworkPolicyDefaults{OperatorNamespace: "bollard-system"}, ClusterBootstrap: true},
		"production": {DefaultImage: testImage, NetworkPolicy: NetworkPolicyDefaults{
			OperatorNamespace: "operators",
			Prometheus:        v1alpha1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "unused-default"}}},
		}},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			b := loadBroker(t, name)
			for kind, obj := range children(t, b, p) {
				got, err := yaml.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				compareGolden(t, filepath.Join("testdata", name, kind+".yaml"), got)
			}
		})
	}
}

// TestGoldenConfigFile pins the rendered broker configuration file itself,
// which is easier to review than the ConfigMap that quotes it.
func TestGoldenConfigFile(t *testing.T) {
	for _, name := range []string{"minimal", "production", "cluster"} {
		t.Run(name, func(t *testing.T) {
			cm, err := ConfigMapFor(loadBroker(t, name))
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join("testdata", name, ConfigFile), []byte(cm.Data[ConfigFile]))
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./controllers/resources -update` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the builder's output (run with -update and review the diff):\n--- got\n%s", path, got)
	}
}

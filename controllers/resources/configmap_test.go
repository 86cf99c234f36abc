package resources

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/broker/config"
)

// TestConfigMapParsesBack proves the broker accepts what the operator
// writes: the file in the ConfigMap parses and validates with the broker's
// own loader, to the same configuration.
func TestConfigMapParsesBack(t *testing.T) {
	for _, name := range []string{"minimal", "production"} {
		t.Run(name, func(t *testing.T) {
			b := loadBroker(t, name)
			want, err := BrokerConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			cm, err := ConfigMap(b, want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := config.Parse([]byte(cm.Data[ConfigFile]))
			if err != nil {
				t.Fatalf("the broker rejects the rendered config: %v", err)
			}
			// broker/config's Diff tells a nil ACL from an empty one, and its
			// YAML writes a nil ACL as []; both mean "no rules".
			if len(got.Auth.ACL) == 0 && len(want.Auth.ACL) == 0 {
				got.Auth.ACL, want.Auth.ACL = nil, nil
			}
			if d := config.Diff(want, got); d != nil {
				t.Errorf("round trip changed %v", d)
			}
			if got.ConfigGeneration != b.Generation {
				t.Errorf("configGeneration = %d, want metadata.generation %d", got.ConfigGeneration, b.Generation)
			}
		})
	}
}

// TestBrokerConfigRejectsWhatTheBrokerWould covers a spec the CRD accepts
// but the broker does not: the error names the broker's field.
func TestBrokerConfigRejectsWhatTheBrokerWould(t *testing.T) {
	b := loadBroker(t, "minimal")
	b.Spec.Sessions.MaxSessionExpiry = metav1.Duration{Duration: 1500 * time.Millisecond}
	b.Spec.Sessions.DefaultSessionExpiry = metav1.Duration{Duration: time.Second}
	_, err := BrokerConfig(b)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Field != "sessions.maxSessionExpiry" {
		t.Fatalf("err = %v, want a config.FieldError for sessions.maxSessionExpiry", err)
	}
}

func TestPodDisruptionBudgetDisabled(t *testing.T) {
	b := loadBroker(t, "minimal")
	off := false
	b.Spec.PodDisruptionBudget.Enabled = &off
	if pdb := PodDisruptionBudget(b); pdb != nil {
		t.Errorf("PodDisruptionBudget = %v, want nil when disabled", pdb)
	}
}

func TestEndpoint(t *testing.T) {
	cases := map[string]struct {
		broker string
		want   string
	}{
		"plain MQTT first": {"minimal", "minimal.default.svc:1883"},
		"then TLS":         {"production", "telemetry.iot.svc:8883"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Endpoint(loadBroker(t, tc.broker)); got != tc.want {
				t.Errorf("Endpoint = %q, want %q", got, tc.want)
			}
		})
	}
	b := loadBroker(t, "production")
	b.Spec.Listeners.TLS = nil
	if got, want := Endpoint(b), "ws://telemetry.iot.svc:8083/mqtt"; got != want {
		t.Errorf("WebSocket only: Endpoint = %q, want %q", got, want)
	}
}

func TestSoftMemoryLimit(t *testing.T) {
	cases := map[string]struct {
		r    corev1.ResourceRequirements
		want int64
	}{
		"no limits":      {corev1.ResourceRequirements{}, 0},
		"request only":   {corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}, 0},
		"1Gi limit":      {corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}, 858993456},
		"cpu limit only": {corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}, 0},
		"decimal 500M":   {corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("500M")}}, 400000000},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := softMemoryLimit(tc.r); got != tc.want {
				t.Errorf("softMemoryLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

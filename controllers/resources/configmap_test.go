package resources

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
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

// TestBrokerConfigRejectsWhatTheBrokerWould covers specs the CRD accepts
// but the broker does not (the CRD keeps simple bounds and leaves the
// rest to the broker's rules): the error names the broker's field.
func TestBrokerConfigRejectsWhatTheBrokerWould(t *testing.T) {
	cases := map[string]struct {
		change func(s *v1alpha1.MQTTBrokerSpec)
		field  string
	}{
		"expiry not whole seconds": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Sessions.MaxSessionExpiry = metav1.Duration{Duration: 1500 * time.Millisecond}
			s.Sessions.DefaultSessionExpiry = metav1.Duration{Duration: time.Second}
		}, "sessions.maxSessionExpiry"},
		"topic length below 16": {func(s *v1alpha1.MQTTBrokerSpec) { s.Limits.MaxTopicLength = ptr.To(int32(8)) }, "limits.maxTopicLength"},
		"no topic levels":       {func(s *v1alpha1.MQTTBrokerSpec) { s.Limits.MaxTopicLevels = ptr.To(int32(0)) }, "limits.maxTopicLevels"},
		"user property bytes below 64": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Limits.MaxUserPropertyBytes = ptr.To(resource.MustParse("32"))
		}, "limits.maxUserPropertyBytes"},
		"keep alive above 65535s": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Limits.MaxKeepAlive = &metav1.Duration{Duration: 24 * time.Hour}
		}, "limits.maxKeepAlive"},
		"zero check wait": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Auth.Login.CheckWait = &metav1.Duration{}
		}, "login.checkWait"},
		// failureBackoffMax left unset keeps the broker's 1m, which the
		// broker then compares with the spec's failureBackoff.
		"backoff above the default max": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Auth.Login.FailureBackoff = &metav1.Duration{Duration: 5 * time.Minute}
		}, "login.failureBackoffMax"},
		"no backoff addresses": {func(s *v1alpha1.MQTTBrokerSpec) { s.Auth.Login.BackoffAddresses = ptr.To(int32(0)) }, "login.backoffAddresses"},
		// Queue policies: the CRD's rules catch most; the broker's are the
		// definition, and what slips through is refused with its field.
		"policy expiry not whole seconds": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Queues.Policies = []v1alpha1.QueuePolicy{{Name: "a", ClientID: "a-*"},
				{Name: "b", ClientID: "b-*", MaxSessionExpiry: &metav1.Duration{Duration: 1500 * time.Millisecond}}}
		}, "queues.policies[1].maxSessionExpiry"},
		"policy pattern with a NUL": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Queues.Policies = []v1alpha1.QueuePolicy{{Name: "a", ClientID: "a\x00*"}}
		}, "queues.policies[0].clientID"},
		"policy without a byte budget": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Queues.Policies = []v1alpha1.QueuePolicy{{Name: "a", ClientID: "a-*", MaxQueuedBytes: ptr.To(resource.MustParse("0"))}}
		}, "queues.policies[0].maxQueuedBytes"},
		"policy without selector": {func(s *v1alpha1.MQTTBrokerSpec) {
			s.Queues.Policies = []v1alpha1.QueuePolicy{{Name: "a", MaxQueuedMessages: ptr.To(int64(5))}}
		}, "queues.policies[0]"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := loadBroker(t, "minimal")
			tc.change(&b.Spec)
			_, err := BrokerConfig(b)
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a config.FieldError for %s", err, tc.field)
			}
		})
	}
}

// TestRenderQueuePolicies: spec.queues.policies reach the broker in
// order, with what they leave unset still unset (the broker applies its
// broker-wide values), and parse back to the same configuration.
func TestRenderQueuePolicies(t *testing.T) {
	b := loadBroker(t, "production")
	b.Spec.Queues.Policies = []v1alpha1.QueuePolicy{
		{Name: "sensors", ClientID: "sensor-*", MaxQueuedMessages: ptr.To(int64(500)),
			MaxQueuedBytes: ptr.To(resource.MustParse("256Ki")), OverflowPolicy: "DropOldest", StoreBudgetPercent: ptr.To(int32(20))},
		{Name: "actuators", Principal: "actuator-*", OverflowPolicy: "RejectPublish", QueueQoS0: ptr.To(false),
			MaxSessionExpiry: &metav1.Duration{Duration: 168 * time.Hour}},
		{Name: "firmware", TopicFilter: "firmware/#", MaxQueuedBytes: ptr.To(resource.MustParse("512Mi"))},
	}
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	ps := c.Queues.Policies
	if len(ps) != 3 || ps[0].Name != "sensors" || ps[1].Name != "actuators" || ps[2].Name != "firmware" {
		t.Fatalf("policies %+v", ps)
	}
	if *ps[0].MaxQueuedMessages != 500 || *ps[0].MaxQueuedBytes != 256<<10 || *ps[0].StoreBudgetPercent != 20 || ps[0].QueueQoS0 != nil {
		t.Errorf("sensors %+v", ps[0])
	}
	if ps[1].Principal != "actuator-*" || *ps[1].QueueQoS0 || ps[1].MaxSessionExpiry.D() != 168*time.Hour || ps[1].MaxQueuedMessages != nil {
		t.Errorf("actuators %+v", ps[1])
	}
	if e := c.Effective(2); e.MaxQueuedBytes != 512<<20 || e.MaxQueuedMessages != c.Queues.MaxQueuedMessages || e.OverflowPolicy != c.Queues.OverflowPolicy {
		t.Errorf("firmware inherits wrongly: %+v", e)
	}
	if e := c.Effective(0); e.StoreBudget != c.Queues.MaxStoreBytes/100*20 {
		t.Errorf("sensors' share %d of %d", e.StoreBudget, c.Queues.MaxStoreBytes)
	}
	cm, err := ConfigMap(b, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse([]byte(cm.Data[ConfigFile]))
	if err != nil {
		t.Fatalf("the broker rejects the rendered policies: %v", err)
	}
	if d := config.Diff(c, got); d != nil {
		t.Errorf("round trip changed %v", d)
	}
	// Policies are hot: they never change the restart hash.
	if config.RestartHash(c) != config.RestartHash(mustConfig(t, loadBroker(t, "production"))) {
		t.Error("queue policies changed the restart hash")
	}
}

func mustConfig(t *testing.T, b *v1alpha1.MQTTBroker) *config.Config {
	t.Helper()
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBrokerConfigOptionalLimits: a limit the spec leaves unset keeps the
// broker's default (the CRD has no default of its own for it), and a 0 set
// in the spec reaches the broker as 0 ("no limit", "disabled"), not as
// "unset".
func TestBrokerConfigOptionalLimits(t *testing.T) {
	def := config.Default()
	unset, err := BrokerConfig(loadBroker(t, "minimal"))
	if err != nil {
		t.Fatal(err)
	}
	if unset.Sessions.MaxSessions != def.Sessions.MaxSessions ||
		unset.Sessions.MaxSessionsPerPrincipal != def.Sessions.MaxSessionsPerPrincipal ||
		unset.Queues.MinVolumeFreeBytes != def.Queues.MinVolumeFreeBytes || unset.Login != def.Login {
		t.Errorf("unset fields did not keep the broker's defaults: sessions %+v, queues %+v, login %+v",
			unset.Sessions, unset.Queues, unset.Login)
	}
	l, dl := unset.Limits, def.Limits
	if l.MaxKeepAlive != dl.MaxKeepAlive || l.MaxTopicLength != dl.MaxTopicLength || l.MaxTopicLevels != dl.MaxTopicLevels ||
		l.MaxUserProperties != dl.MaxUserProperties || l.MaxUserPropertyBytes != dl.MaxUserPropertyBytes ||
		l.MaxRetainedMessages != dl.MaxRetainedMessages || l.MaxRetainedBytes != dl.MaxRetainedBytes {
		t.Errorf("unset limits did not keep the broker's defaults: %+v, want %+v", l, dl)
	}

	b := loadBroker(t, "minimal")
	zero := ptr.To(int32(0))
	b.Spec.Sessions.MaxSessions, b.Spec.Sessions.MaxSessionsPerPrincipal = zero, zero
	b.Spec.Queues.MinVolumeFreeBytes = ptr.To(resource.MustParse("0"))
	b.Spec.Limits.MaxKeepAlive = &metav1.Duration{}
	b.Spec.Limits.MaxRetainedMessages = zero
	b.Spec.Limits.MaxRetainedBytes = ptr.To(resource.MustParse("0"))
	b.Spec.Auth.Login.MaxConcurrentChecks, b.Spec.Auth.Login.FailuresBeforeBackoff = zero, zero
	b.Spec.Auth.Login.FailureBackoff = &metav1.Duration{}
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sessions.MaxSessions != 0 || c.Sessions.MaxSessionsPerPrincipal != 0 || c.Queues.MinVolumeFreeBytes != 0 ||
		c.Limits.MaxKeepAlive != 0 || c.Limits.MaxRetainedMessages != 0 || c.Limits.MaxRetainedBytes != 0 ||
		c.Login.MaxConcurrentChecks != 0 || c.Login.FailuresBeforeBackoff != 0 || c.Login.FailureBackoff != 0 {
		t.Errorf("a 0 in the spec did not reach the broker: sessions %+v, queues %+v, limits %+v, login %+v",
			c.Sessions, c.Queues, c.Limits, c.Login)
	}
}

// persistence.earlyDelivery reaches the broker's durability.earlyDelivery;
// unset, the broker's default (on) stands.
func TestBrokerConfigEarlyDelivery(t *testing.T) {
	b := loadBroker(t, "minimal")
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Durability.EarlyDelivery != nil || !c.Durability.Early() {
		t.Fatalf("unset: %v", c.Durability.EarlyDelivery)
	}
	b.Spec.Persistence.EarlyDelivery = ptr.To(false)
	if c, err = BrokerConfig(b); err != nil {
		t.Fatal(err)
	}
	if c.Durability.Early() {
		t.Fatal("persistence.earlyDelivery: false did not reach the broker")
	}
	b.Spec.Persistence.EarlyDelivery = ptr.To(true)
	if c, err = BrokerConfig(b); err != nil || !c.Durability.Early() {
		t.Fatalf("persistence.earlyDelivery: true: %v", err)
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

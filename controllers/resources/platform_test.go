package resources

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
)

func rawConfig(s string) *runtime.RawExtension { return &runtime.RawExtension{Raw: []byte(s)} }

// TestConfigOverlay: spec.config reaches the rendered file for fields the
// MQTTBroker does not expose; a field it exposes, or one the operator
// manages, is refused naming what sets it, and so is anything the broker's
// own loader refuses (unknown fields, invalid values), with its message.
func TestConfigOverlay(t *testing.T) {
	cases := map[string]struct {
		overlay string
		check   func(*config.Config) bool
		refused string // "" means accepted
	}{
		"not exposed, hot": {overlay: `{"limits": {"connectTimeout": "4s", "maxClientIDLength": 64, "maxTopicAliases": 0}}`,
			check: func(c *config.Config) bool {
				return c.Limits.ConnectTimeout.String() == "4s" && c.Limits.MaxClientIDLength == 64 && c.Limits.MaxTopicAliases == 0
			}},
		"keeps the rest of a section": {overlay: `{"limits": {"outboundBufferBytes": 65536}}`,
			check: func(c *config.Config) bool {
				return c.Limits.OutboundBufferBytes == 65536 && c.Limits.MaxConnections == 10000 && c.Limits.MaxInflight == 128
			}},
		"empty":                {overlay: `{}`, check: func(c *config.Config) bool { return c.Limits.ConnectTimeout.String() == "10s" }},
		"empty section":        {overlay: `{"limits": {}}`, check: func(*config.Config) bool { return true }},
		"exposed limit":        {overlay: `{"limits": {"maxConnections": 5}}`, refused: "limits.maxConnections is set by spec.limits.maxConnections"},
		"exposed queue field":  {overlay: `{"queues": {"overflowPolicy": "DropNewest"}}`, refused: "spec.queues.overflowPolicy"},
		"store budget":         {overlay: `{"queues": {"maxStoreBytes": 1}}`, refused: "spec.persistence.size"},
		"operator's admin":     {overlay: `{"admin": {"tokenFile": ""}}`, refused: "admin.tokenFile is set by the operator"},
		"operator's data dir":  {overlay: `{"dataDir": "/tmp"}`, refused: "dataDir is set by the operator"},
		"generation":           {overlay: `{"configGeneration": 99}`, refused: "configGeneration"},
		"listeners":            {overlay: `{"listeners": {"mqtt": {"address": "127.0.0.1:1883"}}}`, refused: "spec.listeners"},
		"auth":                 {overlay: `{"auth": {"allowAnonymous": true}}`, refused: "spec.auth"},
		"login":                {overlay: `{"login": {"checkWait": "1s"}}`, refused: "spec.auth.login.checkWait"},
		"whole section":        {overlay: `{"limits": null}`, refused: "limits holds limits."},
		"memory limit":         {overlay: `{"limits": {"memoryLimit": 1}}`, refused: "spec.resources.limits.memory"},
		"durability":           {overlay: `{"durability": {"interval": "1s"}}`, refused: "spec.persistence.durability"},
		"unknown field":        {overlay: `{"limits": {"maxConnectionz": 5}}`, refused: "field maxConnectionz not found"},
		"unknown section":      {overlay: `{"clusterz": {"peers": 3}}`, refused: "field clusterz not found"},
		"replication":          {overlay: `{"cluster": {"bootstrap": true}}`, refused: "cluster.bootstrap is set by the operator"},
		"replication timeouts": {overlay: `{"cluster": {"heartbeatTimeout": "1s"}}`, refused: "cluster.heartbeatTimeout is set by the operator"},
		"cluster section":      {overlay: `{"cluster": null}`, refused: "cluster holds cluster."},
		"invalid value":        {overlay: `{"limits": {"connectTimeout": "soon"}}`, refused: "the broker's configuration loader refuses it"},
		"value Validate fails": {overlay: `{"limits": {"maxClientIDLength": -1}}`, refused: "limits.maxClientIDLength"},
		"wrong type":           {overlay: `{"sessions": {"allowTakeoverByOtherPrincipal": "yes please"}}`, refused: "sessions.allowTakeoverByOtherPrincipal: config: yaml: unmarshal errors"},
		"not an object":        {overlay: `[1, 2]`, refused: "spec.config"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := loadBroker(t, "minimal")
			b.Spec.Config = rawConfig(tc.overlay)
			c, err := BrokerConfig(b)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) || !errors.Is(err, ErrConfigOverlay) {
					t.Fatalf("BrokerConfig = %v, want a spec.config refusal containing %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("the overlay did not reach the rendered config: %+v", c.Limits)
			}
			// What the operator renders must be untouched.
			want, err := BrokerConfig(loadBroker(t, "minimal"))
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range config.Diff(want, c) {
				if owner := ownerOf(ch.Field); owner != "" {
					t.Errorf("the overlay changed %s, which %s sets", ch.Field, owner)
				}
			}
		})
	}
}

// TestConfigOverlayHandoverBounds: the readiness handover's bounds are the
// cluster fields spec.config may set: they reach a cluster's file, the
// broker's own rules refuse bad values, and a single node refuses them as
// meaningless there.
func TestConfigOverlayHandoverBounds(t *testing.T) {
	b := loadBroker(t, "minimal")
	b.Spec.Replicas = ptr.To[int32](3)
	b.Spec.Config = rawConfig(`{"cluster": {"handoverHoldFor": "2s", "handoverMaxHeld": 20000}}`)
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.HandoverHoldFor.String() != "2s" || c.Cluster.HandoverMaxHeld != 20000 || c.Cluster.Enabled() {
		t.Fatalf("rendered cluster section: %+v", c.Cluster)
	}
	b.Spec.Config = rawConfig(`{"cluster": {"handoverMaxHeld": 1000000}}`)
	if _, err := BrokerConfig(b); err == nil || !strings.Contains(err.Error(), "cluster.handoverMaxHeld") || !errors.Is(err, ErrConfigOverlay) {
		t.Fatalf("a million held connections: %v, want the loader's refusal naming cluster.handoverMaxHeld", err)
	}
	b.Spec.Config = rawConfig(`{"cluster": {"handoverHoldFor": "1ms"}}`)
	if _, err := BrokerConfig(b); err == nil || !strings.Contains(err.Error(), "cluster.handoverHoldFor") {
		t.Fatalf("a 1ms hold: %v, want a refusal naming cluster.handoverHoldFor", err)
	}
	b.Spec.Replicas = ptr.To[int32](1)
	b.Spec.Config = rawConfig(`{"cluster": {"handoverMaxHeld": 100}}`)
	if _, err := BrokerConfig(b); err == nil || !errors.Is(err, ErrCluster) || !strings.Contains(err.Error(), "replicas 3 or 5") {
		t.Fatalf("handover bounds on a single node: %v, want a refusal", err)
	}
}

// TestOwnedConfigCoversRenderer: every field of the broker's file that the
// renderer sets away from the broker's default, for the golden brokers
// (which set every spec field), is owned, so spec.config cannot disagree
// with the spec. A new spec field rendered into a path configOwners does
// not cover fails here.
func TestOwnedConfigCoversRenderer(t *testing.T) {
	for _, name := range []string{"minimal", "production"} {
		b := loadBroker(t, name)
		b.Spec.Config = nil
		c, err := BrokerConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range config.Diff(config.Default(), c) {
			if ownerOf(ch.Field) == "" {
				t.Errorf("%s: the renderer sets %s but spec.config could override it: add it to configOwners", name, ch.Field)
			}
		}
	}
	// And the fields left free are real fields of the broker's file.
	free := 0
	for _, f := range config.Fields() {
		if ownerOf(f.Field) == "" {
			free++
		}
	}
	if free == 0 {
		t.Error("spec.config can set no field at all")
	}
}

// TestMountPathAttacks: every way of reaching the operator's directories
// through spec.volumeMounts is refused; unrelated paths are not.
func TestMountPathAttacks(t *testing.T) {
	refused := []string{
		"/etc/bollard", "/etc/bollard/x", "/etc", "/", "/var", "/var/lib", "/var/lib/bollard/data",
		"/var/run", "/var/run/bollard", "/var/run/bollard/tls", "/var/run/bollard/users/x", "/tmp", "/tmp/x",
		"etc/ssl", "", "/etc/ssl/../bollard", "/etc/./bollard", "//etc/bollard", "/etc/bollard/", "/etc/ssl/",
	}
	for _, p := range refused {
		if err := checkMountPath(p); err == nil {
			t.Errorf("mountPath %q accepted", p)
		}
	}
	for _, p := range []string{"/etc/ssl/ca", "/var/cache/bollard", "/var/lib/bollard-extra", "/tmpfs", "/etc/bollard2", "/opt"} {
		if err := checkMountPath(p); err != nil {
			t.Errorf("mountPath %q refused: %v", p, err)
		}
	}
}

func TestValidatePodSpec(t *testing.T) {
	cases := map[string]struct {
		change func(s *v1alpha1.MQTTBrokerSpec)
		want   string // "" means valid
	}{
		"valid": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.PodLabels = map[string]v1alpha1.LabelValue{"team": "a"}
			s.Env = []corev1.EnvVar{{Name: "TZ", Value: "UTC"}}
			s.Volumes = []v1alpha1.Volume{{Name: "ca", Secret: &corev1.SecretVolumeSource{SecretName: "ca"}}}
			s.VolumeMounts = []v1alpha1.VolumeMount{{Name: "ca", MountPath: "/etc/ssl/ca"}}
		}},
		"selector label": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.PodLabels = map[string]v1alpha1.LabelValue{LabelInstance: "other"}
		}, want: "spec.podLabels[app.kubernetes.io/instance]"},
		"managed-by label": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.PodLabels = map[string]v1alpha1.LabelValue{LabelManagedBy: "me"}
		}, want: "spec.podLabels[app.kubernetes.io/managed-by]"},
		"GOMEMLIMIT": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.Env = []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "1"}}
		}, want: "spec.env[0].name GOMEMLIMIT"},
		"operator's volume name": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.Volumes = []v1alpha1.Volume{{Name: "data", EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		}, want: "spec.volumes[0].name data"},
		"duplicate volume": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.Volumes = []v1alpha1.Volume{{Name: "a", EmptyDir: &corev1.EmptyDirVolumeSource{}}, {Name: "a", EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		}, want: "spec.volumes[1].name a: used twice"},
		"mount of the data volume": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.VolumeMounts = []v1alpha1.VolumeMount{{Name: "data", MountPath: "/srv"}}
		}, want: "spec.volumeMounts[0].name data: no such volume"},
		"mount over the config": {change: func(s *v1alpha1.MQTTBrokerSpec) {
			s.Volumes = []v1alpha1.Volume{{Name: "x", EmptyDir: &corev1.EmptyDirVolumeSource{}}}
			s.VolumeMounts = []v1alpha1.VolumeMount{{Name: "x", MountPath: "/etc"}}
		}, want: `spec.volumeMounts[0].mountPath "/etc": above the operator's /etc/bollard`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := loadBroker(t, "minimal")
			tc.change(&b.Spec)
			err := ValidatePodSpec(b)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrPodSpec)):
				t.Fatalf("ValidatePodSpec = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestPodAdditionsNeverOverrideTheOperator: even a spec that skipped
// validation (an older CRD) cannot replace the operator's selector labels
// or its GOMEMLIMIT in the pod template.
func TestPodAdditionsNeverOverrideTheOperator(t *testing.T) {
	b := loadBroker(t, "minimal")
	b.Spec.PodLabels = map[string]v1alpha1.LabelValue{LabelName: "evil", LabelInstance: "evil", "team": "a"}
	b.Spec.Env = []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "1"}, {Name: "TZ", Value: "UTC"}}
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := StatefulSet(b, c, Params{DefaultImage: testImage}).Spec.Template
	for k, v := range SelectorLabels(b) {
		if tmpl.Labels[k] != v {
			t.Errorf("pod label %s = %q, want the operator's %q", k, tmpl.Labels[k], v)
		}
	}
	if tmpl.Labels["team"] != "a" {
		t.Errorf("pod labels %v lack the spec's team=a", tmpl.Labels)
	}
	env := tmpl.Spec.Containers[0].Env
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	if !slices.Equal(names, []string{"GOMEMLIMIT", "TZ"}) || env[0].ValueFrom == nil {
		t.Errorf("env = %v, want the operator's GOMEMLIMIT (from the memory limit) then TZ", env)
	}
}

func TestCertificate(t *testing.T) {
	b := loadBroker(t, "minimal")
	if Certificate(b) != nil || TLSSecretName(b) != "" {
		t.Fatal("a broker without TLS asks for a certificate")
	}
	b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, SecretName: "own"}
	if Certificate(b) != nil || TLSSecretName(b) != "own" {
		t.Fatal("a TLS listener with its own Secret asks cert-manager for one")
	}
	b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, IssuerRef: &v1alpha1.IssuerRef{Name: "ca"}}
	b.Spec.Replicas = ptr.To(int32(3))
	cert := Certificate(b)
	if cert == nil {
		t.Fatal("no Certificate for issuerRef")
	}
	spec := cert.Object["spec"].(map[string]any)
	if spec["secretName"] != b.Name+"-tls" || TLSSecretName(b) != b.Name+"-tls" {
		t.Errorf("secretName = %v, TLSSecretName = %q, want %s-tls", spec["secretName"], TLSSecretName(b), b.Name)
	}
	wantRef := map[string]any{"name": "ca", "kind": "Issuer", "group": "cert-manager.io"}
	if !reflect.DeepEqual(spec["issuerRef"], wantRef) {
		t.Errorf("issuerRef = %v, want the defaults %v", spec["issuerRef"], wantRef)
	}
	names := CertificateDNSNames(b)
	for _, want := range []string{
		b.Name, b.Name + "." + b.Namespace + ".svc", HeadlessServiceName(b) + "." + b.Namespace + ".svc",
		b.Name + "-0." + HeadlessServiceName(b) + "." + b.Namespace + ".svc", b.Name + "-2." + HeadlessServiceName(b) + "." + b.Namespace + ".svc",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("DNS names %v lack %s", names, want)
		}
	}
	b.Spec.Listeners.TLS.DNSNames = []string{"mqtt.example.com", b.Name}
	if got := CertificateDNSNames(b); got[len(got)-1] != "mqtt.example.com" || len(got) != len(names)+1 {
		t.Errorf("extra DNS names: got %v (duplicates must go)", got)
	}
	// The pod mounts the Secret cert-manager writes, by name only.
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range StatefulSet(b, c, Params{DefaultImage: testImage}).Spec.Template.Spec.Volumes {
		if v.Name == "tls" && (v.Secret == nil || v.Secret.SecretName != b.Name+"-tls") {
			t.Errorf("tls volume = %+v, want Secret %s-tls", v.VolumeSource, b.Name)
		}
	}
}

func TestServiceTrafficSettings(t *testing.T) {
	b := loadBroker(t, "minimal")
	b.Spec.Service.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
	b.Spec.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if s := Service(b).Spec; s.ExternalTrafficPolicy != "" || s.LoadBalancerSourceRanges != nil {
		t.Errorf("a ClusterIP Service got %q and %v", s.ExternalTrafficPolicy, s.LoadBalancerSourceRanges)
	}
	b.Spec.Service.Type = corev1.ServiceTypeNodePort
	if s := Service(b).Spec; s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || s.LoadBalancerSourceRanges != nil {
		t.Errorf("a NodePort Service got %q and %v", s.ExternalTrafficPolicy, s.LoadBalancerSourceRanges)
	}
	b.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
	b.Spec.Service.ExternalTrafficPolicy = ""
	if s := Service(b).Spec; s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || !slices.Equal(s.LoadBalancerSourceRanges, []string{"10.0.0.0/8"}) {
		t.Errorf("a LoadBalancer Service got %q and %v, want Cluster (the default, written out) and the ranges", s.ExternalTrafficPolicy, s.LoadBalancerSourceRanges)
	}
	for _, svc := range []*corev1.Service{HeadlessService(b), MetricsService(b)} {
		if svc.Spec.ExternalTrafficPolicy != "" || svc.Spec.LoadBalancerSourceRanges != nil {
			t.Errorf("%s got the client Service's traffic settings", svc.Name)
		}
	}
}

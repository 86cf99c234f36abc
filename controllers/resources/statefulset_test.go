package resources

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
)

// TestHotAndRestartChanges is the hot/restart classification as the
// operator applies it: a hot change must leave the pod template (and so
// the running pod) alone and change only the ConfigMap; a restart change
// must change the pod template.
func TestHotAndRestartChanges(t *testing.T) {
	cases := map[string]struct {
		change func(b *v1alpha1.MQTTBroker)
		roll   bool
	}{
		"queues.maxQueuedMessages": {func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.MaxQueuedMessages = 5 }, false},
		"queues.maxQueuedBytes":    {func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.MaxQueuedBytes = resource.MustParse("1Mi") }, false},
		"queues.overflowPolicy":    {func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.OverflowPolicy = v1alpha1.OverflowRejectPublish }, false},
		"queues.queueQoS0":         {func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.QueueQoS0 = true }, false},
		"sessions.maxSessionExpiry": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Sessions.MaxSessionExpiry = metav1.Duration{Duration: 48 * time.Hour}
		}, false},
		"sessions.defaultSessionExpiry": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Sessions.DefaultSessionExpiry = metav1.Duration{Duration: time.Hour}
		}, false},
		"limits.maxConnections":            {func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxConnections = ptr.To(int32(7)) }, false},
		"limits.maxInflight":               {func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxInflight = 9 }, false},
		"sessions.maxSessions":             {func(b *v1alpha1.MQTTBroker) { b.Spec.Sessions.MaxSessions = ptr.To(int32(5)) }, false},
		"sessions.maxSessionsPerPrincipal": {func(b *v1alpha1.MQTTBroker) { b.Spec.Sessions.MaxSessionsPerPrincipal = ptr.To(int32(5)) }, false},
		"queues.minVolumeFreeBytes": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Queues.MinVolumeFreeBytes = ptr.To(resource.MustParse("1Gi"))
		}, false},
		"limits.maxKeepAlive": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Limits.MaxKeepAlive = &metav1.Duration{Duration: time.Minute}
		}, false},
		"limits.maxTopicLength":      {func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxTopicLength = ptr.To(int32(100)) }, false},
		"limits.maxTopicLevels":      {func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxTopicLevels = ptr.To(int32(4)) }, false},
		"limits.maxUserProperties":   {func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxUserProperties = ptr.To(int32(4)) }, false},
		"limits.maxRetainedMessages": {func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxRetainedMessages = ptr.To(int32(4)) }, false},
		"limits.maxUserPropertyBytes": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Limits.MaxUserPropertyBytes = ptr.To(resource.MustParse("1Ki"))
		}, false},
		"limits.maxRetainedBytes": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Limits.MaxRetainedBytes = ptr.To(resource.MustParse("1Mi"))
		}, false},
		"auth.login.maxConcurrentChecks": {func(b *v1alpha1.MQTTBroker) { b.Spec.Auth.Login.MaxConcurrentChecks = ptr.To(int32(1)) }, false},
		"auth.login.checkWait": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.Login.CheckWait = &metav1.Duration{Duration: time.Second}
		}, false},
		"auth.login.failuresBeforeBackoff": {func(b *v1alpha1.MQTTBroker) { b.Spec.Auth.Login.FailuresBeforeBackoff = ptr.To(int32(1)) }, false},
		"auth.login.failureBackoff": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.Login.FailureBackoff = &metav1.Duration{Duration: 3 * time.Second}
		}, false},
		"auth.login.failureBackoffMax": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.Login.FailureBackoffMax = &metav1.Duration{Duration: time.Hour}
		}, false},
		"auth.login.backoffAddresses": {func(b *v1alpha1.MQTTBroker) { b.Spec.Auth.Login.BackoffAddresses = ptr.To(int32(10)) }, false},
		"auth.acl": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "*", Topic: "#", Access: "readwrite"}}
		}, false},
		"auth.allowAnonymous": {func(b *v1alpha1.MQTTBroker) { b.Spec.Auth.AllowAnonymous = true }, false},
		"logLevel":            {func(b *v1alpha1.MQTTBroker) { b.Spec.LogLevel = "debug" }, false},
		"metadata.generation": {func(b *v1alpha1.MQTTBroker) { b.Generation++ }, false},
		"persistence.size":    {func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("5Gi") }, false},
		"service.type":        {func(b *v1alpha1.MQTTBroker) { b.Spec.Service.Type = corev1.ServiceTypeNodePort }, false},
		"podDisruptionBudget": {func(b *v1alpha1.MQTTBroker) { b.Spec.PodDisruptionBudget.Enabled = ptr.To(false) }, false},
		"listeners.mqtt.port": {func(b *v1alpha1.MQTTBroker) { b.Spec.Listeners.MQTT.Port = 1884 }, true},
		"persistence.durability": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Persistence.Durability = v1alpha1.DurabilityNone
		}, true},
		"listeners.tls": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 8883, SecretName: "tls"}
		}, true},
		"listeners.websocket": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.WebSocket = &v1alpha1.WebSocketListener{Port: 8083, Path: "/mqtt"}
		}, true},
		"image": {func(b *v1alpha1.MQTTBroker) { b.Spec.Image = "example.com/bollard:v9" }, true},
		"resources": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
		}, true},
		"restartedAt annotation": {func(b *v1alpha1.MQTTBroker) {
			b.Annotations = map[string]string{v1alpha1.RestartedAtAnnotation: "now"}
		}, true},
		"unrelated annotation": {func(b *v1alpha1.MQTTBroker) {
			b.Annotations = map[string]string{"example.com/owner": "team-a"}
		}, false},
		"podLabels": {func(b *v1alpha1.MQTTBroker) { b.Spec.PodLabels = map[string]v1alpha1.LabelValue{"team": "a"} }, true},
		"env":       {func(b *v1alpha1.MQTTBroker) { b.Spec.Env = []corev1.EnvVar{{Name: "TZ", Value: "UTC"}} }, true},
		"volumes": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Volumes = []v1alpha1.Volume{{Name: "ca", ConfigMap: &corev1.ConfigMapVolumeSource{}}}
			b.Spec.VolumeMounts = []v1alpha1.VolumeMount{{Name: "ca", MountPath: "/etc/ssl/ca"}}
		}, true},
		"topologySpreadConstraints": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone"}}
		}, true},
		"service.loadBalancerSourceRanges": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
			b.Spec.Service.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
			b.Spec.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, false},
		// Through spec.config: hot fields of the broker's file stay hot.
		"limits.connectTimeout": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Config = rawConfig(`{"limits": {"connectTimeout": "3s"}}`)
		}, false},
		"sessions.allowTakeoverByOtherPrincipal": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Config = rawConfig(`{"sessions": {"allowTakeoverByOtherPrincipal": true}}`)
		}, false},
	}
	base := loadBroker(t, "minimal")
	before := children(t, base, Params{DefaultImage: testImage})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := base.DeepCopy()
			tc.change(b)
			after := children(t, b, Params{DefaultImage: testImage})
			oldT := statefulSetOf(before).Spec.Template
			newT := statefulSetOf(after).Spec.Template
			if rolled := !reflect.DeepEqual(oldT, newT); rolled != tc.roll {
				t.Errorf("pod template changed = %v, want %v\nold annotations %v\nnew annotations %v",
					rolled, tc.roll, oldT.Annotations, newT.Annotations)
			}
			checkRendered(t, name, base, b, tc.roll)
		})
	}
}

// checkRendered: when a case is named after a field of the broker's file
// (its spec path, or that path without "auth." for auth.login.*), the
// change must reach that field of the rendered config, in the class the
// case expects, so that a hot case cannot pass by rendering nothing.
func checkRendered(t *testing.T, name string, before, after *v1alpha1.MQTTBroker, roll bool) {
	t.Helper()
	field := ""
	for _, f := range config.Fields() {
		if f.Field == name || "auth."+f.Field == name {
			field = f.Field
		}
	}
	if field == "" {
		return
	}
	oldC, err := BrokerConfig(before)
	if err != nil {
		t.Fatal(err)
	}
	newC, err := BrokerConfig(after)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Hot
	if roll {
		want = config.Restart
	}
	for _, c := range config.Diff(oldC, newC) {
		if c.Field == field {
			if c.Class != want {
				t.Errorf("%s is %s in broker/config, the case expects %s", field, c.Class, want)
			}
			return
		}
	}
	t.Errorf("changing %s did not change %s in the rendered config", name, field)
}

// TestSecretRenewalsReachTheRunningBroker: a renewed TLS Secret (and a
// changed users or admin token Secret) must not roll the pod, and must
// reach the running broker, which reloads the files. So nothing of a
// Secret's content is an input of the pod template (Params has none, and
// the template is the same whatever the Secret holds), every Secret is
// mounted as a whole volume (the kubelet never refreshes subPath mounts),
// and the rendered config reads the files from those mounts.
func TestSecretRenewalsReachTheRunningBroker(t *testing.T) {
	b := loadBroker(t, "production")
	c, err := BrokerConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	sts := StatefulSet(b, c, Params{DefaultImage: testImage})
	again := StatefulSet(b.DeepCopy(), c, Params{DefaultImage: testImage})
	if sts.Annotations[TemplateHashAnnotation] != again.Annotations[TemplateHashAnnotation] {
		t.Fatal("the pod template is not a function of the spec and config alone")
	}
	secretVolumes := map[string]string{} // volume -> Secret
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = v.Secret.SecretName
		}
	}
	want := map[string]string{"tls": b.Spec.Listeners.TLS.SecretName, "users": b.Spec.Auth.UsersSecretRef.Name, "admin-token": AdminTokenSecretName(b)}
	for vol, secret := range want {
		if secretVolumes[vol] != secret {
			t.Errorf("volume %s mounts Secret %q, want %q", vol, secretVolumes[vol], secret)
		}
	}
	mounts := map[string]string{}
	for _, m := range sts.Spec.Template.Spec.Containers[0].VolumeMounts {
		if _, ok := secretVolumes[m.Name]; ok {
			if m.SubPath != "" || m.SubPathExpr != "" {
				t.Errorf("Secret volume %s is mounted with a subPath: the kubelet would never refresh it", m.Name)
			}
			mounts[m.Name] = m.MountPath
		}
	}
	files := map[string][]string{
		"tls":         {c.Listeners.TLS.CertFile, c.Listeners.TLS.KeyFile, c.Listeners.TLS.ClientCAFile},
		"users":       {c.Auth.UsersFile},
		"admin-token": {c.Admin.TokenFile},
	}
	for vol, paths := range files {
		for _, f := range paths {
			if mounts[vol] == "" || !strings.HasPrefix(f, mounts[vol]+"/") {
				t.Errorf("config file %q is not under the %s mount %q", f, vol, mounts[vol])
			}
		}
	}
	if c.Admin.TokenFile == "" {
		t.Error("the rendered config does not protect the admin API with a token")
	}
}

func TestVolumeClaimTemplateHasNoVersionLabel(t *testing.T) {
	for _, name := range []string{"minimal", "production"} {
		b := loadBroker(t, name)
		sts := statefulSetOf(children(t, b, Params{DefaultImage: testImage}))
		if _, ok := sts.Spec.Template.Labels[LabelVersion]; !ok {
			t.Errorf("%s: pod template lacks %s", name, LabelVersion)
		}
		for _, vct := range sts.Spec.VolumeClaimTemplates {
			if _, ok := vct.Labels[LabelVersion]; ok {
				t.Errorf("%s: volume claim template %s has a version label", name, vct.Name)
			}
		}
	}
}

func TestSpecHashIgnoresVolumeClaimTemplates(t *testing.T) {
	b := loadBroker(t, "minimal")
	sts := statefulSetOf(children(t, b, Params{DefaultImage: testImage}))
	bigger := b.DeepCopy()
	bigger.Spec.Persistence.Size = resource.MustParse("100Gi")
	sts2 := statefulSetOf(children(t, bigger, Params{DefaultImage: testImage}))
	if sts.Annotations[SpecHashAnnotation] != sts2.Annotations[SpecHashAnnotation] {
		t.Error("growing the volume changes the StatefulSet's spec hash; it must not touch the StatefulSet")
	}
}

func TestGracePeriodOutlastsDrain(t *testing.T) {
	for _, name := range []string{"minimal", "production"} {
		b := loadBroker(t, name)
		c, err := BrokerConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		grace := time.Duration(*StatefulSet(b, c, Params{}).Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
		if c.DrainTimeout.D() >= grace {
			t.Errorf("%s: drain timeout %s is not shorter than the grace period %s", name, c.DrainTimeout, grace)
		}
	}
}

func TestImageVersion(t *testing.T) {
	cases := map[string]string{
		"ghcr.io/bollard-io/bollard:v1.2.3":     "v1.2.3",
		"bollard":                               "",
		"localhost:5000/bollard":                "",
		"localhost:5000/bollard:dev":            "dev",
		"ghcr.io/bollard-io/bollard@sha256:abc": "",
	}
	for image, want := range cases {
		if got := imageVersion(image); got != want {
			t.Errorf("imageVersion(%q) = %q, want %q", image, got, want)
		}
	}
}

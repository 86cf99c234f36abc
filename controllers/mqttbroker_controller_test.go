//go:build envtest

package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

var ctx = context.Background()

func newBroker(ns, name string) *v1alpha1.MQTTBroker {
	return &v1alpha1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func create(t *testing.T, b *v1alpha1.MQTTBroker) *v1alpha1.MQTTBroker {
	t.Helper()
	if err := k8s.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// observed waits until the operator has reconciled b's current generation
// and returns b as stored.
func observed(t *testing.T, b *v1alpha1.MQTTBroker) *v1alpha1.MQTTBroker {
	t.Helper()
	out := &v1alpha1.MQTTBroker{}
	eventually(t, func() error {
		if err := get(t, out, b.Namespace, b.Name); err != nil {
			return err
		}
		if out.Status.ObservedGeneration != out.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", out.Status.ObservedGeneration, out.Generation)
		}
		return nil
	})
	return out
}

func statefulSet(t *testing.T, b *v1alpha1.MQTTBroker) *appsv1.StatefulSet {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	eventually(t, func() error { return get(t, sts, b.Namespace, resources.StatefulSetName(b)) })
	return sts
}

func brokerConfig(t *testing.T, b *v1alpha1.MQTTBroker) *config.Config {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := get(t, cm, b.Namespace, resources.ConfigMapName(b)); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse([]byte(cm.Data[resources.ConfigFile]))
	if err != nil {
		t.Fatalf("the broker would reject the ConfigMap: %v", err)
	}
	return c
}

func condition(t *testing.T, b *v1alpha1.MQTTBroker, typ string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	eventually(t, func() error {
		cur := &v1alpha1.MQTTBroker{}
		if err := get(t, cur, b.Namespace, b.Name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cur.Status.Conditions, typ)
		if c == nil || c.Status != status || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("%s = %+v, want %s/%s", typ, c, status, reason)
		}
		return nil
	})
}

func hasEvent(t *testing.T, b *v1alpha1.MQTTBroker, reason controllers.EventReason, contains string) {
	t.Helper()
	eventually(t, func() error {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace(b.Namespace)); err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name == b.Name && e.Reason == string(reason) && strings.Contains(e.Note, contains) {
				return nil
			}
			seen = append(seen, e.Reason+": "+e.Note)
		}
		return fmt.Errorf("no %s event containing %q among %q", reason, contains, seen)
	})
}

func TestCreateMakesEveryChild(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "minimal")))

	children := map[string]client.Object{
		resources.ServiceAccountName(b):      &corev1.ServiceAccount{},
		resources.ConfigMapName(b):           &corev1.ConfigMap{},
		resources.ServiceName(b):             &corev1.Service{},
		resources.HeadlessServiceName(b):     &corev1.Service{},
		resources.StatefulSetName(b) + "/st": &appsv1.StatefulSet{},
		resources.PodDisruptionBudgetName(b): &policyv1.PodDisruptionBudget{},
	}
	for key, obj := range children {
		name, _, _ := strings.Cut(key, "/")
		if err := get(t, obj, ns, name); err != nil {
			t.Fatalf("%T %s: %v", obj, name, err)
		}
		ref := metav1.GetControllerOf(obj)
		if ref == nil || ref.UID != b.UID || ref.Kind != "MQTTBroker" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("%T %s: controller reference = %+v, want the MQTTBroker", obj, name, ref)
		}
		if obj.GetLabels()[resources.LabelManagedBy] != resources.ManagedBy {
			t.Errorf("%T %s: labels %v lack managed-by", obj, name, obj.GetLabels())
		}
	}
	sts := statefulSet(t, b)
	if got := sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted; got != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("claims on deletion: %s, want Retain (the default reclaimPolicy)", got)
	}
	if got := sts.Spec.Template.Spec.Containers[0].Image; got != testImage {
		t.Errorf("image = %s, want the operator's default %s", got, testImage)
	}
	if c := brokerConfig(t, b); c.ConfigGeneration != b.Generation {
		t.Errorf("configGeneration = %d, want %d", c.ConfigGeneration, b.Generation)
	}
	if b.Status.Endpoint != "minimal."+ns+".svc:1883" {
		t.Errorf("status.endpoint = %q", b.Status.Endpoint)
	}
	for _, typ := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionProgressing, v1alpha1.ConditionDegraded, v1alpha1.ConditionConfigApplied} {
		c := meta.FindStatusCondition(b.Status.Conditions, typ)
		if c == nil || c.ObservedGeneration != b.Generation {
			t.Errorf("condition %s = %+v, want one for generation %d", typ, c, b.Generation)
		}
	}
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	hasEvent(t, b, controllers.EventCreated, "StatefulSet "+b.Name)
}

// TestDefaultsMatchGoldenFixture keeps the builders' golden input honest:
// the fixtures must be exactly what the apiserver stores for the minimal
// and cluster samples.
func TestDefaultsMatchGoldenFixture(t *testing.T) {
	for _, name := range []string{"minimal", "cluster"} {
		ns := namespace(t)
		sample := &v1alpha1.MQTTBroker{}
		readYAML(t, filepath.Join("..", "config", "samples", "mqtt_v1alpha1_mqttbroker_"+name+".yaml"), sample)
		sample.Namespace = ns
		create(t, sample)
		fixture := &v1alpha1.MQTTBroker{}
		readYAML(t, filepath.Join("resources", "testdata", name+".input.yaml"), fixture)
		stored := &v1alpha1.MQTTBroker{}
		if err := get(t, stored, ns, sample.Name); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(stored.Spec, fixture.Spec) {
			got, _ := yaml.Marshal(stored.Spec)
			t.Errorf("the apiserver defaults the %s sample to\n%s\nbut resources/testdata/%s.input.yaml says otherwise", name, got, name)
		}
	}
}

// TestSamplesAreAccepted: every sample of config/samples passes the CRD's
// validation.
func TestSamplesAreAccepted(t *testing.T) {
	ns := namespace(t)
	paths, err := filepath.Glob(filepath.Join("..", "config", "samples", "mqtt_*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, path := range paths {
		sample := &v1alpha1.MQTTBroker{}
		readYAML(t, path, sample)
		sample.Namespace = ns
		if err := k8s.Create(ctx, sample, client.DryRunAll); err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestInvalidManifestsAreRejected: the apiserver refuses bad manifests
// with a message that names the field.
func TestInvalidManifestsAreRejected(t *testing.T) {
	ns := namespace(t)
	cases := map[string]struct {
		mutate func(b *v1alpha1.MQTTBroker)
		want   []string
	}{
		"replicas 2": {func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(2)) },
			[]string{"spec.replicas", "replicas must be 1, 3 or 5"}},
		"replicas 4": {func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(4)) },
			[]string{"spec.replicas", "replicas must be 1, 3 or 5"}},
		"a PDB that lets a majority go": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Replicas = ptr.To(int32(3))
			b.Spec.PodDisruptionBudget.MaxUnavailable = ptr.To(int32(2))
		}, []string{"spec", "must leave a majority"}},
		"bad overflow policy": {func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.OverflowPolicy = "DropAll" },
			[]string{"spec.queues.overflowPolicy", "DropOldest"}},
		"admin port": {func(b *v1alpha1.MQTTBroker) { b.Spec.Listeners.MQTT.Port = 8080 },
			[]string{"spec.listeners.mqtt.port", "reserved for the broker's admin endpoint"}},
		"same port twice": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Listeners.TLS = &v1alpha1.TLSListener{Port: 1883, SecretName: "tls"}
		}, []string{"spec.listeners", "listeners.tls.port must differ from listeners.mqtt.port"}},
		"no listener": {func(b *v1alpha1.MQTTBroker) { b.Spec.Listeners.MQTT.Enabled = ptr.To(false) },
			[]string{"spec.listeners", "at least one listener"}},
		"default expiry above max": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Sessions.MaxSessionExpiry = metav1.Duration{Duration: 3600e9}
			b.Spec.Sessions.DefaultSessionExpiry = metav1.Duration{Duration: 7200e9}
		}, []string{"spec.sessions", "must not exceed sessions.maxSessionExpiry"}},
		"tiny volume": {func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("1Mi") },
			[]string{"spec.persistence.size", "at least 64Mi"}},
		"bad durability": {func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Durability = "fsync" },
			[]string{"spec.persistence.durability", "sync"}},
		"reserved pod annotation": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.PodAnnotations = map[string]string{"mqtt.bollard.io/config-hash": "x"}
		}, []string{"spec.podAnnotations", "reserved"}},
		"serviceMonitor without metrics": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Metrics.Enabled = ptr.To(false)
			b.Spec.Metrics.ServiceMonitor.Enabled = true
		}, []string{"spec.metrics", "metrics.serviceMonitor.enabled needs metrics.enabled"}},
		"bad scrape interval": {func(b *v1alpha1.MQTTBroker) { b.Spec.Metrics.ServiceMonitor.Interval = "1.5s" },
			[]string{"spec.metrics.serviceMonitor.interval"}},
		"prometheusRule without metrics": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Metrics.Enabled = ptr.To(false)
			b.Spec.Metrics.PrometheusRule.Enabled = true
		}, []string{"spec.metrics", "metrics.prometheusRule.enabled needs metrics.enabled"}},
		"too many top queues": {func(b *v1alpha1.MQTTBroker) { b.Spec.Metrics.TopQueues = 101 },
			[]string{"spec.metrics.topQueues", "100"}},
		"network policy peer admitting every pod": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.NetworkPolicy.Prometheus = &v1alpha1.NetworkPolicyPeer{}
		}, []string{"spec.networkPolicy.prometheus", "set namespaceSelector, podSelector or both"}},
		"long name": {func(b *v1alpha1.MQTTBroker) { b.Name = strings.Repeat("a", 53) },
			[]string{"metadata.name must be at most 52 characters"}},
		// ACL rules: what broker/access refuses is refused at admission.
		"acl reserved user": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "$anonymous", Topic: "#", Access: "readwrite"}}
		}, []string{"spec.auth.acl[0].user", "names starting with '$' are reserved"}},
		"acl control character in user": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "a\nb", Topic: "#", Access: "readwrite"}}
		}, []string{"spec.auth.acl[0].user", "control character"}},
		"acl '#' not last": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "*", Topic: "a/#/b", Access: "readwrite"}}
		}, []string{"spec.auth.acl[0].topic", "MQTT topic filter"}},
		"acl '+' inside a level": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "*", Topic: "a/%u+", Access: "readwrite"}}
		}, []string{"spec.auth.acl[0].topic", "MQTT topic filter"}},
		"acl %u for anonymous": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{Topic: "home/%u/#", Access: "readwrite"}}
		}, []string{"spec.auth.acl[0]", "cannot use %u"}},
		"acl bad access": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "*", Topic: "#", Access: "write"}}
		}, []string{"spec.auth.acl[0].access"}},
		"negative maxSessions": {func(b *v1alpha1.MQTTBroker) { b.Spec.Sessions.MaxSessions = ptr.To(int32(-1)) },
			[]string{"spec.sessions.maxSessions"}},
		"negative minVolumeFreeBytes": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Queues.MinVolumeFreeBytes = ptr.To(resource.MustParse("-1Mi"))
		}, []string{"spec.queues.minVolumeFreeBytes", "must not be negative"}},
		"negative maxRetainedBytes": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Limits.MaxRetainedBytes = ptr.To(resource.MustParse("-1"))
		}, []string{"spec.limits.maxRetainedBytes", "must not be negative"}},
		"negative maxKeepAlive": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Limits.MaxKeepAlive = &metav1.Duration{Duration: -time.Second}
		}, []string{"spec.limits.maxKeepAlive", "must not be negative"}},
		"negative login backoff": {func(b *v1alpha1.MQTTBroker) {
			b.Spec.Auth.Login.FailureBackoff = &metav1.Duration{Duration: -time.Second}
		}, []string{"spec.auth.login.failureBackoff", "must not be negative"}},
		"negative backoffAddresses": {func(b *v1alpha1.MQTTBroker) { b.Spec.Auth.Login.BackoffAddresses = ptr.To(int32(-5)) },
			[]string{"spec.auth.login.backoffAddresses"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBroker(ns, "invalid")
			tc.mutate(b)
			err := k8s.Create(ctx, b)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: err = %v, want Invalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestImmutableAndMonotonicFields(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "grow")
	b.Spec.Persistence.Size = resource.MustParse("2Gi")
	b.Spec.Persistence.StorageClassName = ptr.To("standard")
	create(t, b)
	cases := map[string]struct {
		mutate func(b *v1alpha1.MQTTBroker)
		want   []string
	}{
		"shrink": {func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("1Gi") },
			[]string{"spec.persistence.size", "never shrink"}},
		"shrink in other units": {func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("2000Mi") },
			[]string{"spec.persistence.size", "never shrink"}},
		"storage class": {func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.StorageClassName = ptr.To("fast") },
			[]string{"spec.persistence", "storageClassName cannot be changed"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			eventually(t, func() error { // the operator may patch the status in between
				cur := &v1alpha1.MQTTBroker{}
				if err = get(t, cur, ns, b.Name); err != nil {
					return err
				}
				tc.mutate(cur)
				if err = k8s.Update(ctx, cur); apierrors.IsConflict(err) {
					return err
				}
				return nil
			})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("update: err = %v, want Invalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Growing is fine.
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("3Gi") })
}

func TestHotChangeOnlyTouchesConfigMap(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "hot")))
	before := statefulSet(t, b)

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Queues.MaxQueuedMessages = 42
		b.Spec.Queues.OverflowPolicy = v1alpha1.OverflowRejectPublish
		b.Spec.Sessions.DefaultSessionExpiry = metav1.Duration{Duration: 3600e9}
		b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "*", Topic: "a/#", Access: "readwrite"}}
		b.Spec.LogLevel = "debug"
	})
	b = observed(t, b)
	c := brokerConfig(t, b)
	if c.Queues.MaxQueuedMessages != 42 || c.Queues.OverflowPolicy != config.OverflowRejectPublish || c.LogLevel != "debug" ||
		c.ConfigGeneration != b.Generation {
		t.Errorf("ConfigMap not updated: queues %+v, logLevel %s, generation %d (want %d)",
			c.Queues, c.LogLevel, c.ConfigGeneration, b.Generation)
	}
	after := statefulSet(t, b)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a hot change updated the StatefulSet (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
	if !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Errorf("a hot change changed the pod template: config-hash %s -> %s",
			before.Spec.Template.Annotations[resources.ConfigHashAnnotation], after.Spec.Template.Annotations[resources.ConfigHashAnnotation])
	}
}

func TestRestartChangeRollsPods(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "restart")))
	hash0 := statefulSet(t, b).Spec.Template.Annotations[resources.ConfigHashAnnotation]

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Durability = v1alpha1.DurabilityInterval })
	b = observed(t, b)
	sts := statefulSet(t, b)
	hash1 := sts.Spec.Template.Annotations[resources.ConfigHashAnnotation]
	if hash1 == hash0 {
		t.Fatalf("changing persistence.durability kept config-hash %s", hash0)
	}
	hasEvent(t, b, controllers.EventRestarted, "configuration that needs a restart changed")

	// On-demand restart through the annotation.
	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Annotations = map[string]string{v1alpha1.RestartedAtAnnotation: "2026-01-01T00:00:00Z"}
	})
	eventually(t, func() error {
		sts := statefulSet(t, b)
		if got := sts.Spec.Template.Annotations[v1alpha1.RestartedAtAnnotation]; got != "2026-01-01T00:00:00Z" {
			return fmt.Errorf("pod template %s = %q", v1alpha1.RestartedAtAnnotation, got)
		}
		return nil
	})
	hasEvent(t, b, controllers.EventRestarted, "restart requested")
	if got := statefulSet(t, b).Spec.Template.Annotations[resources.ConfigHashAnnotation]; got != hash1 {
		t.Errorf("restart annotation changed config-hash %s -> %s", hash1, got)
	}
}

func TestPausedStopsReconciling(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "paused")))
	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Annotations = map[string]string{v1alpha1.PausedAnnotation: "true"}
	})
	condition(t, b, v1alpha1.ConditionProgressing, metav1.ConditionFalse, v1alpha1.ReasonPaused)
	hasEvent(t, b, controllers.EventPaused, v1alpha1.PausedAnnotation)

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.MaxQueuedMessages = 7 })
	consistently(t, 2e9, func() error {
		if got := brokerConfig(t, b).Queues.MaxQueuedMessages; got == 7 {
			return errors.New("a paused broker's ConfigMap was updated")
		}
		cur := &v1alpha1.MQTTBroker{}
		if err := get(t, cur, ns, b.Name); err != nil {
			return err
		}
		if cur.Status.ObservedGeneration == cur.Generation {
			return errors.New("a paused broker's observedGeneration moved")
		}
		return nil
	})

	update(t, b, func(b *v1alpha1.MQTTBroker) { delete(b.Annotations, v1alpha1.PausedAnnotation) })
	b = observed(t, b)
	if got := brokerConfig(t, b).Queues.MaxQueuedMessages; got != 7 {
		t.Errorf("after resuming, maxQueuedMessages = %d, want 7", got)
	}
	condition(t, b, v1alpha1.ConditionProgressing, metav1.ConditionTrue, v1alpha1.ReasonRollingOut)
}

// markRunning plays the StatefulSet controller and kubelet: a ready pod
// from the current template, and a StatefulSet status that says so.
func markRunning(t *testing.T, b *v1alpha1.MQTTBroker) *corev1.Pod {
	t.Helper()
	sts := statefulSet(t, b)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.Namespace, Name: sts.Name + "-0", Labels: sts.Spec.Template.Labels},
		Spec:       *sts.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: resources.DataVolume, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: resources.PVCName(b, 0)},
	}})
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "10.0.0.10", PodIPs: []corev1.PodIP{{IP: "10.0.0.10"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
	}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
			return err
		}
		sts.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: sts.Generation, Replicas: 1, ReadyReplicas: 1, CurrentReplicas: 1, UpdatedReplicas: 1,
			AvailableReplicas: 1, CurrentRevision: "r1", UpdateRevision: "r1",
		}
		return k8s.Status().Update(ctx, sts)
	})
	return pod
}

func TestStatusAndConfigApplied(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "status")))
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReplicasNotReady)
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonNoRunningBrokers)

	pod := markRunning(t, b)
	// The broker is up but cannot be asked yet.
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnreachable)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{Version: "v0.0.0-test", ConfigGeneration: b.Generation,
		SessionsOnline: 2, SessionsOffline: 3, QueuedMessages: 11})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAllReplicasReady)
	condition(t, b, v1alpha1.ConditionProgressing, metav1.ConditionFalse, v1alpha1.ReasonRolloutComplete)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(cur.Status.Sessions, -1) != 5 || ptr.Deref(cur.Status.QueuedMessages, -1) != 11 || cur.Status.Version != "v0.0.0-test" || cur.Status.ReadyReplicas != 1 {
		t.Errorf("status = %+v", cur.Status)
	}
	readySince := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime

	// A hot change: pending until the broker reports the new generation,
	// which the operator learns by asking again with backoff (nothing in
	// the cluster changes when a broker reloads its file).
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxInflight = 64 })
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{Version: "v0.0.0-test", ConfigGeneration: b.Generation})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if got := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime; !got.Equal(&readySince) {
		t.Errorf("Ready.lastTransitionTime moved from %v to %v without a status change", readySince, got)
	}
	if cur.Status.AppliedConfigGeneration != b.Generation {
		t.Errorf("appliedConfigGeneration = %d, want %d", cur.Status.AppliedConfigGeneration, b.Generation)
	}
}

// TestMissingSecretDegradesUntilCreated: a missing TLS Secret is reported
// and re-checked (the operator does not watch Secrets) until it appears;
// neither its arrival nor a renewed certificate changes the pod template:
// the kubelet mounts the Secret once it exists and the broker reloads
// renewed certificates itself.
func TestMissingSecretDegradesUntilCreated(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "tls")
	b.Spec.Listeners.TLS = &v1alpha1.TLSListener{SecretName: "tls-cert"}
	b = observed(t, create(t, b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonSecretNotFound)
	template0 := statefulSet(t, b).Annotations[resources.TemplateHashAnnotation]

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-cert"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	// The re-check (SecretRecheck) brings the broker back here.
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	// A Ready broker is reconciled every StatusRefresh, and each reconcile
	// reads the TLS Secret again: the renewal is seen, and must not roll.
	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation})
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAllReplicasReady)
	update(t, secret, func(s *corev1.Secret) { s.Data[corev1.TLSCertKey] = []byte("renewed") })
	// Watch the template for at least 2 s and at least two reconciles (each
	// reads the Secret again); a loaded machine may take longer than 2 s to
	// run two, so the watch goes on until it has them, within a bound.
	calls := brokers.podCalls(ns, pod.Name)
	start := time.Now()
	for {
		if h := statefulSet(t, b).Annotations[resources.TemplateHashAnnotation]; h != template0 {
			t.Fatalf("the pod template changed (%s -> %s) with the TLS Secret: the pod would roll", template0, h)
		}
		n := brokers.podCalls(ns, pod.Name) - calls
		if n >= 2 && time.Since(start) >= 2*time.Second {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("only %d reconciles in %v after the renewal: the test proved nothing", n, time.Since(start))
		}
		time.Sleep(pollStep)
	}
	noEvent(t, b, controllers.EventRestarted)
}

// noEvent fails if b has an Event with reason.
func noEvent(t *testing.T, b *v1alpha1.MQTTBroker, reason controllers.EventReason) {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(b.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == b.Name && e.Reason == string(reason) {
			t.Errorf("unexpected %s event: %s", reason, e.Note)
		}
	}
}

func TestDisablingPodDisruptionBudgetDeletesIt(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "pdb")))
	pdb := &policyv1.PodDisruptionBudget{}
	if err := get(t, pdb, ns, resources.PodDisruptionBudgetName(b)); err != nil {
		t.Fatal(err)
	}
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.PodDisruptionBudget.Enabled = ptr.To(false) })
	eventually(t, func() error {
		err := get(t, pdb, ns, resources.PodDisruptionBudgetName(b))
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("PodDisruptionBudget still there: %w", err)
	})
	hasEvent(t, b, controllers.EventDeleted, "PodDisruptionBudget")
}

// TestStatusRefreshesWhileReady: the Sessions and Queued columns follow
// the brokers while the MQTTBroker is Ready, though nothing in the cluster
// changes (the periodic broker query, StatusRefresh).
func TestStatusRefreshesWhileReady(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "refresh")))
	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation, SessionsOnline: 1, QueuedMessages: 2})
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAllReplicasReady)
	totals := func(sessions, queued int64) {
		t.Helper()
		eventually(t, func() error {
			cur := &v1alpha1.MQTTBroker{}
			if err := get(t, cur, ns, b.Name); err != nil {
				return err
			}
			// nil (unknown) reads as -1: a 0 must be stored as 0, not
			// left out (kubectl showed a blank SESSIONS column for 0).
			got, q := ptr.Deref(cur.Status.Sessions, -1), ptr.Deref(cur.Status.QueuedMessages, -1)
			if got != sessions || q != queued {
				return fmt.Errorf("sessions %d, queued %d; want %d, %d", got, q, sessions, queued)
			}
			return nil
		})
	}
	totals(1, 2)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation, SessionsOnline: 5, SessionsOffline: 2, QueuedMessages: 40})
	totals(7, 40)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation})
	totals(0, 0)
}

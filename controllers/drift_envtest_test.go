//go:build envtest

package controllers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// TestStatefulSetDriftIsCorrected: hand edits to fields the operator owns
// are put back without a spec change; what others add to the pod
// template's annotations stays.
func TestStatefulSetDriftIsCorrected(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "drift")))
	sts := statefulSet(t, b)
	update(t, sts, func(s *appsv1.StatefulSet) {
		s.Spec.Replicas = ptr.To(int32(2))
		c := &s.Spec.Template.Spec.Containers[0]
		c.Image = "example.com/evil:1"
		c.Env = append(c.Env, corev1.EnvVar{Name: "EXTRA", Value: "1"})
	})
	eventually(t, func() error {
		s := statefulSet(t, b)
		c := s.Spec.Template.Spec.Containers[0]
		if *s.Spec.Replicas != 1 || c.Image != testImage || len(c.Env) != 1 {
			return fmt.Errorf("not corrected yet: replicas %d, image %s, env %v", *s.Spec.Replicas, c.Image, c.Env)
		}
		return nil
	})
	hasEvent(t, b, controllers.EventDriftCorrected, "spec.template.spec.containers[0].image")
	hasEvent(t, b, controllers.EventRestarted, "changed outside the operator")

	// `kubectl rollout restart` adds a template annotation: not drift.
	update(t, sts, func(s *appsv1.StatefulSet) {
		s.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-01-01T00:00:00Z"
	})
	rv := sts.ResourceVersion
	consistently(t, 2*time.Second, func() error {
		s := statefulSet(t, b)
		if s.ResourceVersion != rv {
			return fmt.Errorf("the operator rewrote the StatefulSet after a foreign template annotation (resourceVersion %s -> %s)", rv, s.ResourceVersion)
		}
		return nil
	})
}

// TestServiceAnnotationsFollowTheSpec: annotations removed from
// spec.service.annotations leave the Service; those others added stay.
func TestServiceAnnotationsFollowTheSpec(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "svc-annotations")
	b.Spec.Service.Annotations = map[string]string{"a.example.com/x": "1", "b.example.com/y": "2"}
	b = observed(t, create(t, b))
	svc := &corev1.Service{}
	eventually(t, func() error { return get(t, svc, ns, resources.ServiceName(b)) })
	update(t, svc, func(s *corev1.Service) {
		s.Annotations["other.example.com/z"] = "theirs"
		s.Annotations["a.example.com/x"] = "edited"
	})
	serviceAnnotations(t, b, map[string]string{"a.example.com/x": "1", "b.example.com/y": "2", "other.example.com/z": "theirs"})

	update(t, b, func(b *v1alpha1.MQTTBroker) { delete(b.Spec.Service.Annotations, "a.example.com/x") })
	serviceAnnotations(t, b, map[string]string{"b.example.com/y": "2", "other.example.com/z": "theirs"})
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Service.Annotations = nil })
	serviceAnnotations(t, b, map[string]string{"other.example.com/z": "theirs"})
}

// serviceAnnotations waits until the client Service's annotations, but for
// the operator's bookkeeping, are want.
func serviceAnnotations(t *testing.T, b *v1alpha1.MQTTBroker, want map[string]string) {
	t.Helper()
	eventually(t, func() error {
		svc := &corev1.Service{}
		if err := get(t, svc, b.Namespace, resources.ServiceName(b)); err != nil {
			return err
		}
		got := map[string]string{}
		for k, v := range svc.Annotations {
			if k != resources.ManagedAnnotationsAnnotation {
				got[k] = v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("Service annotations %v, want %v", got, want)
		}
		return nil
	})
}

// TestSteadyStateMakesNoWrites: reconciling a broker whose children match
// its spec writes nothing, whatever the apiserver defaulted. The one write
// allowed is status.stats.observedAt, which moves once per status refresh
// period (the age of the brokers' figures).
func TestSteadyStateMakesNoWrites(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "steady")
	b.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
	b.Spec.Service.Annotations = map[string]string{"lb.example.com/internal": "true"}
	b.Spec.Listeners.WebSocket = &v1alpha1.WebSocketListener{}
	b.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "mqtt", Effect: corev1.TaintEffectNoSchedule}}
	b = observed(t, create(t, b))
	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{Version: "v0.0.0-test", ConfigGeneration: b.Generation})
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAllReplicasReady)
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	before, beforeStatus := resourceVersions(t, b), statusWithoutAge(t, b)
	for i := range 5 {
		// Each pod change is one more reconcile (the pod watch).
		calls := brokers.podCalls(ns, pod.Name)
		update(t, pod, func(p *corev1.Pod) { p.Annotations = map[string]string{"touch": fmt.Sprint(i)} })
		eventually(t, func() error {
			if brokers.podCalls(ns, pod.Name) <= calls {
				return errors.New("no reconcile since the pod changed")
			}
			return nil
		})
	}
	if after := resourceVersions(t, b); after != before {
		t.Errorf("reconciling a steady state wrote objects:\nbefore %s\nafter  %s", before, after)
	}
	if after := statusWithoutAge(t, b); after != beforeStatus {
		t.Errorf("reconciling a steady state changed the status:\nbefore %s\nafter  %s", beforeStatus, after)
	}
}

// statusWithoutAge is the broker's metadata and status but for
// status.stats.observedAt, as JSON.
func statusWithoutAge(t *testing.T, b *v1alpha1.MQTTBroker) string {
	t.Helper()
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, b.Namespace, b.Name); err != nil {
		t.Fatal(err)
	}
	if cur.Status.Stats != nil {
		cur.Status.Stats.ObservedAt = metav1.Time{}
	}
	out, err := json.Marshal(map[string]any{"generation": cur.Generation, "annotations": cur.Annotations,
		"labels": cur.Labels, "spec": cur.Spec, "status": cur.Status})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// resourceVersions lists the resourceVersion of the broker and each child.
func resourceVersions(t *testing.T, b *v1alpha1.MQTTBroker) string {
	t.Helper()
	objs := []struct {
		name string
		obj  client.Object
	}{
		{resources.ServiceAccountName(b), &corev1.ServiceAccount{}},
		{resources.ConfigMapName(b), &corev1.ConfigMap{}},
		{resources.ServiceName(b), &corev1.Service{}},
		{resources.HeadlessServiceName(b), &corev1.Service{}},
		{resources.StatefulSetName(b), &appsv1.StatefulSet{}},
		{resources.PodDisruptionBudgetName(b), &policyv1.PodDisruptionBudget{}},
		{resources.MetricsServiceName(b), &corev1.Service{}},
	}
	var out []string
	for _, o := range objs {
		if err := get(t, o.obj, b.Namespace, o.name); err != nil {
			t.Fatalf("%T %s: %v", o.obj, o.name, err)
		}
		out = append(out, fmt.Sprintf("%T/%s=%s", o.obj, o.name, o.obj.GetResourceVersion()))
	}
	return strings.Join(out, " ")
}

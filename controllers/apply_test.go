package controllers

import (
	"maps"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/controllers/resources"
)

func TestMergeServiceKeepsAllocatedFields(t *testing.T) {
	cur := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIP: "10.0.0.1",
			Ports: []corev1.ServicePort{{Name: "mqtt", Port: 1883, NodePort: 31883}},
		},
	}
	want := &corev1.Service{Spec: corev1.ServiceSpec{
		Type:  corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Name: "mqtt", Port: 1884}, {Name: "ws", Port: 8083}},
	}}
	mergeService(cur, want)
	if cur.Spec.ClusterIP != "10.0.0.1" {
		t.Errorf("clusterIP = %q, want the allocated one kept", cur.Spec.ClusterIP)
	}
	if cur.Spec.Ports[0].NodePort != 31883 || cur.Spec.Ports[0].Port != 1884 || cur.Spec.Ports[1].NodePort != 0 {
		t.Errorf("ports = %+v", cur.Spec.Ports)
	}
	if want.Spec.Ports[0].NodePort != 0 {
		t.Error("mergeService changed the desired object")
	}

	// Back to ClusterIP: node ports go.
	want.Spec.Type = corev1.ServiceTypeClusterIP
	mergeService(cur, want)
	if cur.Spec.Ports[0].NodePort != 0 {
		t.Errorf("node port kept on a ClusterIP Service: %+v", cur.Spec.Ports)
	}
}

func TestMergeStatefulSet(t *testing.T) {
	vct := []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}
	want := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{resources.SpecHashAnnotation: "new"}},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "new-headless",
			Template:    corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "sa"}},
		},
	}
	// existing is want as the apiserver stores it: defaulted, with the
	// immutable fields of an older spec.
	existing := func(hash string, edit func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1", Annotations: map[string]string{resources.SpecHashAnnotation: hash}},
			Spec: appsv1.StatefulSetSpec{
				ServiceName: "old-headless", VolumeClaimTemplates: vct,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "sa", DNSPolicy: corev1.DNSClusterFirst}},
			},
		}
		if edit != nil {
			edit(s)
		}
		return s
	}
	cases := map[string]struct {
		cur         *appsv1.StatefulSet
		wantRewrite bool
	}{
		"same hash, only apiserver defaults: left alone": {existing("new", nil), false},
		"new hash: spec rewritten, immutable parts kept": {existing("old", nil), true},
		"same hash, owned field edited: rewritten": {existing("new", func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.ServiceAccountName = "other"
		}), true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mergeStatefulSet(tc.cur, want)
			rewritten := tc.cur.Spec.Template.Spec.DNSPolicy == ""
			if rewritten != tc.wantRewrite {
				t.Fatalf("rewritten = %v, want %v", rewritten, tc.wantRewrite)
			}
			if tc.cur.Spec.Template.Spec.ServiceAccountName != "sa" {
				t.Errorf("serviceAccountName = %q after merge", tc.cur.Spec.Template.Spec.ServiceAccountName)
			}
			if tc.cur.Spec.ServiceName != "old-headless" || len(tc.cur.Spec.VolumeClaimTemplates) != 1 || tc.cur.Spec.Selector == nil {
				t.Errorf("immutable fields changed: %+v", tc.cur.Spec)
			}
		})
	}
	created := &appsv1.StatefulSet{}
	mergeStatefulSet(created, want)
	if created.Spec.ServiceName != "new-headless" {
		t.Errorf("a new StatefulSet did not get the desired spec")
	}
}

func TestMergeAnnotations(t *testing.T) {
	const list = resources.ManagedAnnotationsAnnotation
	cases := map[string]struct {
		cur, want, out map[string]string
	}{
		"nothing set, nothing wanted": {nil, nil, nil},
		"others' annotations alone":   {map[string]string{"x": "1"}, nil, map[string]string{"x": "1"}},
		"first set": {map[string]string{"x": "1"}, map[string]string{"b": "2", "a": "1"},
			map[string]string{"x": "1", "a": "1", "b": "2", list: "a,b"}},
		"removed from the spec": {map[string]string{"x": "1", "a": "1", "b": "2", list: "a,b"}, map[string]string{"b": "3"},
			map[string]string{"x": "1", "b": "3", list: "b"}},
		"all removed": {map[string]string{"x": "1", "a": "1", list: "a"}, nil, map[string]string{"x": "1"}},
		"hand edit of an owned value": {map[string]string{"a": "edited", list: "a"}, map[string]string{"a": "1"},
			map[string]string{"a": "1", list: "a"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := mergeAnnotations(maps.Clone(tc.cur), tc.want)
			if !maps.Equal(got, tc.out) {
				t.Errorf("mergeAnnotations(%v, %v) = %v, want %v", tc.cur, tc.want, got, tc.out)
			}
		})
	}
}

func TestRollCause(t *testing.T) {
	sts := func(tmpl string, ann map[string]string) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{}
		s.ResourceVersion = "1"
		s.Annotations = map[string]string{resources.TemplateHashAnnotation: tmpl}
		s.Spec.Template.Annotations = ann
		return s
	}
	cases := map[string]struct {
		before, after *appsv1.StatefulSet
		drifted       []string
		want          string
	}{
		"created":     {&appsv1.StatefulSet{}, sts("a", nil), nil, ""},
		"unchanged":   {sts("a", nil), sts("a", nil), nil, ""},
		"restartedAt": {sts("a", nil), sts("b", map[string]string{"mqtt.bollard.io/restartedAt": "now"}), nil, "restart requested"},
		"config": {sts("a", map[string]string{resources.ConfigHashAnnotation: "1"}),
			sts("b", map[string]string{resources.ConfigHashAnnotation: "2"}), nil, "configuration that needs a restart"},
		"image": {sts("a", nil), sts("b", nil), nil, "pod template changed"},
		"drift in the template": {sts("a", nil), sts("a", nil), []string{"spec.replicas", "spec.template.spec.containers[0].image"},
			"changed outside the operator and has been put back (spec.template.spec.containers[0].image)"},
		"drift outside the template": {sts("a", nil), sts("a", nil), []string{"spec.replicas"}, ""},
		"a cluster's membership flags": {sts("a", map[string]string{resources.RollHashAnnotation: "r"}),
			sts("b", map[string]string{resources.RollHashAnnotation: "r"}), nil, ""},
		"a cluster's image": {sts("a", map[string]string{resources.RollHashAnnotation: "r"}),
			sts("b", map[string]string{resources.RollHashAnnotation: "s"}), nil, "pod template changed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := rollCause(tc.before, tc.after, tc.drifted)
			if (tc.want == "") != (got == "") || (tc.want != "" && !strings.Contains(got, tc.want)) {
				t.Errorf("rollCause = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStatefulSetDriftIgnoresTheOperatorsOwnChange: a new spec (here a new
// image) is the operator's change, not drift (issue 11: changing
// spec.image produced a DriftCorrected event naming the image); the same
// difference under an unchanged spec digest is someone else's edit.
func TestStatefulSetDriftIgnoresTheOperatorsOwnChange(t *testing.T) {
	sts := func(specHash, image string) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{}
		s.ResourceVersion = "1"
		s.Annotations = map[string]string{resources.SpecHashAnnotation: specHash}
		s.Spec.Template.Spec.Containers = []corev1.Container{{Name: "broker", Image: image}}
		return s
	}
	if d := statefulSetDrift(sts("old", "bollard:1"), sts("new", "bollard:2")); len(d) != 0 {
		t.Errorf("the operator's own image change reported as drift: %v", d)
	}
	d := statefulSetDrift(sts("same", "edited:9"), sts("same", "bollard:2"))
	if len(d) != 1 || d[0] != "spec.template.spec.containers[0].image" {
		t.Errorf("hand edit under an unchanged spec: drift %v", d)
	}
}

package controllers

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

func TestDriftPaths(t *testing.T) {
	want := func() corev1.PodSpec {
		return corev1.PodSpec{
			ServiceAccountName:           "sa",
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name: "broker", Image: "bollard:1",
				Env: []corev1.EnvVar{{Name: "A", Value: "1"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				},
			}},
		}
	}
	// defaulted is want as the apiserver stores it.
	defaulted := func() corev1.PodSpec {
		s := want()
		s.DNSPolicy = corev1.DNSClusterFirst
		s.RestartPolicy = corev1.RestartPolicyAlways
		s.SecurityContext = &corev1.PodSecurityContext{}
		s.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
		s.Containers[0].TerminationMessagePath = corev1.TerminationMessagePathDefault
		s.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1024Mi")
		return s
	}
	cases := map[string]struct {
		edit func(*corev1.PodSpec)
		want []string
	}{
		"apiserver defaults are not drift": {nil, nil},
		"fields the spec leaves unset may be set by others": {func(s *corev1.PodSpec) {
			s.NodeSelector = map[string]string{"zone": "a"}
			s.Containers[0].WorkingDir = "/x"
		}, nil},
		"an owned string": {func(s *corev1.PodSpec) { s.Containers[0].Image = "evil:1" }, []string{"spec.containers[0].image"}},
		"an owned pointer to false": {func(s *corev1.PodSpec) { s.AutomountServiceAccountToken = ptr.To(true) },
			[]string{"spec.automountServiceAccountToken"}},
		"an owned pointer removed": {func(s *corev1.PodSpec) { s.AutomountServiceAccountToken = nil },
			[]string{"spec.automountServiceAccountToken"}},
		"an added container": {func(s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "sidecar"})
		}, []string{"spec.containers"}},
		"an added env var": {func(s *corev1.PodSpec) {
			s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "B"})
		}, []string{"spec.containers[0].env"}},
		"a quantity changed": {func(s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("2Gi")
		}, []string{"spec.containers[0].resources.requests[memory]"}},
		"a resource added to an owned map": {func(s *corev1.PodSpec) {
			s.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1")
		}, []string{"spec.containers[0].resources.requests"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			have := defaulted()
			if tc.edit != nil {
				tc.edit(&have)
			}
			got := driftPaths("spec", want(), have, driftOptions{})
			if !slices.Equal(got, tc.want) {
				t.Errorf("driftPaths = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDriftPathsOpenMaps(t *testing.T) {
	want := map[string]string{"a": "1"}
	o := driftOptions{openMaps: map[string]bool{"m": true}}
	if got := driftPaths("m", want, map[string]string{"a": "1", "kubectl/restartedAt": "now"}, o); len(got) != 0 {
		t.Errorf("an added key in an open map is drift: %q", got)
	}
	if got := driftPaths("m", want, map[string]string{"a": "2"}, o); !slices.Equal(got, []string{"m[a]"}) {
		t.Errorf("a changed key in an open map: %q", got)
	}
	if got := driftPaths("m", want, map[string]string{"a": "1", "b": "2"}, driftOptions{}); !slices.Equal(got, []string{"m"}) {
		t.Errorf("an added key in a closed map: %q", got)
	}
}

func TestDriftPathsUnstructured(t *testing.T) {
	want := map[string]any{
		"endpoints": []any{map[string]any{"port": "metrics", "interval": "30s"}},
		"selector":  map[string]any{"matchLabels": map[string]any{"a": "b"}},
	}
	o := driftOptions{allMapsOpen: true}
	cases := map[string]struct {
		have any
		want []string
	}{
		"schema defaults": {map[string]any{
			"endpoints": []any{map[string]any{"port": "metrics", "interval": "30s", "scheme": "http"}},
			"selector":  map[string]any{"matchLabels": map[string]any{"a": "b"}},
			"extra":     true,
		}, nil},
		"missing":       {nil, []string{"spec"}},
		"another shape": {map[string]any{"endpoints": "x", "selector": map[string]any{"matchLabels": map[string]any{"a": "b"}}}, []string{"spec[endpoints]"}},
		"changed": {map[string]any{
			"endpoints": []any{map[string]any{"port": "metrics", "interval": "1m"}},
			"selector":  map[string]any{"matchLabels": map[string]any{"a": "b"}},
		}, []string{"spec[endpoints][0][interval]"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := driftPaths("spec", want, tc.have, o); !slices.Equal(got, tc.want) {
				t.Errorf("driftPaths = %q, want %q", got, tc.want)
			}
		})
	}
}

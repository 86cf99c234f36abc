package controllers

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

// readyPods reads EndpointSlices as kube-proxy does: an endpoint without
// a ready condition is ready; a pod ready in any slice is ready; endpoints
// that are not pods are ignored.
func TestReadyPods(t *testing.T) {
	ep := func(pod string, ready *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
		if pod != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
		}
		return e
	}
	slices := []discoveryv1.EndpointSlice{
		{Endpoints: []discoveryv1.Endpoint{ep("mqb-0", ptr.To(false)), ep("mqb-1", nil), ep("", ptr.To(true))}},
		{Endpoints: []discoveryv1.Endpoint{ep("mqb-0", ptr.To(true)), ep("mqb-2", ptr.To(false)),
			{TargetRef: &corev1.ObjectReference{Kind: "Node", Name: "mqb-3"}}}},
	}
	got := readyPods(slices)
	want := map[string]bool{"mqb-0": true, "mqb-1": true, "mqb-2": false}
	if !maps.Equal(got, want) {
		t.Fatalf("readyPods = %v, want %v", got, want)
	}
	if got := readyPods(nil); len(got) != 0 {
		t.Fatalf("no slices: %v", got)
	}
}

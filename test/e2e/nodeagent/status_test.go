package nodeagent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func running(ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "c", Ready: ready, State: corev1.ContainerState{
		Running: &corev1.ContainerStateRunning{StartedAt: nowSec()},
	}}
}

func exited(code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "c", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: code},
	}}
}

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func TestPodStatus(t *testing.T) {
	tests := map[string]struct {
		policy    corev1.RestartPolicy
		cs        []corev1.ContainerStatus
		wantPhase corev1.PodPhase
		wantReady corev1.ConditionStatus
	}{
		"running, not ready":       {corev1.RestartPolicyAlways, []corev1.ContainerStatus{running(false)}, corev1.PodRunning, corev1.ConditionFalse},
		"running, ready":           {corev1.RestartPolicyAlways, []corev1.ContainerStatus{running(true)}, corev1.PodRunning, corev1.ConditionTrue},
		"crashed, will restart":    {corev1.RestartPolicyAlways, []corev1.ContainerStatus{exited(137)}, corev1.PodRunning, corev1.ConditionFalse},
		"succeeded, never restart": {corev1.RestartPolicyNever, []corev1.ContainerStatus{exited(0)}, corev1.PodSucceeded, corev1.ConditionFalse},
		"failed, never restart":    {corev1.RestartPolicyNever, []corev1.ContainerStatus{exited(1)}, corev1.PodFailed, corev1.ConditionFalse},
		"not started yet":          {corev1.RestartPolicyAlways, []corev1.ContainerStatus{{Name: "c"}}, corev1.PodPending, corev1.ConditionFalse},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tc.policy}}
			st := podStatus(pod, tc.cs, nowSec(), "198.18.0.1")
			if st.Phase != tc.wantPhase || condition(st, corev1.PodReady) != tc.wantReady {
				t.Errorf("phase %s ready %s, want %s %s", st.Phase, condition(st, corev1.PodReady), tc.wantPhase, tc.wantReady)
			}
			if st.PodIP != "198.18.0.1" || st.HostIP != "127.0.0.1" || condition(st, corev1.PodScheduled) != corev1.ConditionTrue {
				t.Errorf("podIP %q scheduled %s", st.PodIP, condition(st, corev1.PodScheduled))
			}
		})
	}
}

// A status computed again from an unchanged pod must equal the stored one,
// or the agent would update the pod forever.
func TestPodStatusIsStable(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways}}
	started := nowSec()
	cs := []corev1.ContainerStatus{running(true)}
	pod.Status = podStatus(pod, cs, started, "198.18.0.1")
	old := pod.Status.Conditions[0].LastTransitionTime
	if again := podStatus(pod, cs, started, "198.18.0.1"); !equality.Semantic.DeepEqual(again, pod.Status) {
		t.Errorf("status changed without a cause:\n%+v\n%+v", pod.Status, again)
	}
	pod.Status.Conditions[0].LastTransitionTime = metav1.NewTime(old.Add(-time.Hour))
	if again := podStatus(pod, cs, started, "198.18.0.1"); !again.Conditions[0].LastTransitionTime.Equal(&pod.Status.Conditions[0].LastTransitionTime) {
		t.Error("an unchanged condition lost its transition time")
	}
}

func TestClaimVolume(t *testing.T) {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-b-0", UID: "u1"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To("fast"),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("2Gi"),
			}},
		},
	}
	pv := claimVolume(c, "pvc-u1", "/w/v")
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.Name != "data-b-0" || ref.Namespace != "ns" || ref.UID != "u1" {
		t.Errorf("claimRef %+v", ref)
	}
	if pv.Spec.StorageClassName != "fast" || pv.Spec.HostPath.Path != "/w/v" ||
		pv.Spec.Capacity.Storage().String() != "2Gi" || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("volume %+v", pv.Spec)
	}
}

func TestPortMap(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		PortsAnnotation: `{"mqtt":"127.0.0.1:21883","8080":"127.0.0.1:28080"}`,
	}}}
	m, err := PortMap(pod)
	if err != nil || m["mqtt"] != "127.0.0.1:21883" || m["8080"] != "127.0.0.1:28080" {
		t.Errorf("PortMap = %v, %v", m, err)
	}
	if _, err := PortMap(&corev1.Pod{}); err == nil {
		t.Error("no error without the annotation")
	}
}

func TestRestartWanted(t *testing.T) {
	tests := map[corev1.RestartPolicy][2]bool{ // exit 0, exit 1
		corev1.RestartPolicyAlways:    {true, true},
		corev1.RestartPolicyOnFailure: {false, true},
		corev1.RestartPolicyNever:     {false, false},
	}
	for p, want := range tests {
		if got := [2]bool{restartWanted(p, 0), restartWanted(p, 1)}; got != want {
			t.Errorf("%s: %v, want %v", p, got, want)
		}
	}
}

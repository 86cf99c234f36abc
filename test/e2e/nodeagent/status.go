package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// updateStatus writes the pod status computed from its processes when it
// differs from the stored one.
func (a *Agent) updateStatus(ctx context.Context, pod *corev1.Pod, rt *podRuntime) error {
	want := podStatus(pod, rt.containerStatuses(), metav1.NewTime(rt.created.Truncate(time.Second)), rt.podIP)
	if equality.Semantic.DeepEqual(want, pod.Status) {
		return nil
	}
	p := pod.DeepCopy()
	p.Status = want
	if _, err := a.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("nodeagent: status of %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

func (rt *podRuntime) containerStatuses() []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(rt.containers))
	for _, c := range rt.containers {
		out = append(out, c.status())
	}
	return out
}

// podStatus is the pure mapping from container statuses to a pod status
// (with the pod's stand-in IP, see PodIPRange), keeping condition
// transition times from the stored status when a condition did not change.
func podStatus(pod *corev1.Pod, cs []corev1.ContainerStatus, started metav1.Time, ip string) corev1.PodStatus {
	allReady, running, finished, failed := len(cs) > 0, 0, 0, 0
	for _, s := range cs {
		allReady = allReady && s.Ready
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			finished++
			if s.State.Terminated.ExitCode != 0 {
				failed++
			}
		}
	}
	phase := corev1.PodRunning
	switch {
	case running == 0 && finished == len(cs) && pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
		phase = corev1.PodSucceeded
		if failed > 0 {
			phase = corev1.PodFailed
		}
	case running == 0 && finished == 0:
		phase = corev1.PodPending
	}
	st := corev1.PodStatus{
		Phase: phase, HostIP: "127.0.0.1", PodIP: ip,
		HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}}, PodIPs: []corev1.PodIP{{IP: ip}},
		StartTime: &started, QOSClass: pod.Status.QOSClass, ContainerStatuses: cs,
	}
	old := pod.Status.Conditions
	st.Conditions = []corev1.PodCondition{
		podCondition(old, corev1.PodReadyToStartContainers, true),
		podCondition(old, corev1.PodInitialized, true),
		podCondition(old, corev1.ContainersReady, allReady),
		podCondition(old, corev1.PodReady, allReady),
		podCondition(old, corev1.PodScheduled, true),
	}
	return st
}

func podCondition(old []corev1.PodCondition, t corev1.PodConditionType, ok bool) corev1.PodCondition {
	c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, LastTransitionTime: nowSec()}
	if ok {
		c.Status = corev1.ConditionTrue
	} else if t == corev1.PodReady || t == corev1.ContainersReady {
		c.Reason = "ContainersNotReady"
	}
	for _, o := range old {
		if o.Type == t && o.Status == c.Status {
			c.LastTransitionTime, c.LastProbeTime = o.LastTransitionTime, o.LastProbeTime
			if o.Reason != "" || o.Message != "" {
				c.Reason, c.Message = o.Reason, o.Message
			}
		}
	}
	return c
}

// KillPod sends SIGKILL to the processes of the named pod (as `kill -9`
// would), leaving restarts to the restart policy. It fails when the pod has
// no running process on this node.
func (a *Agent) KillPod(namespace, name string) error {
	return a.SignalPod(namespace, name, syscall.SIGKILL)
}

// SignalPod sends sig to the process groups of the named pod's containers.
func (a *Agent) SignalPod(namespace, name string, sig syscall.Signal) error {
	rt := a.runtime(podKey(namespace, name))
	if rt == nil {
		return fmt.Errorf("nodeagent: pod %s/%s does not run here", namespace, name)
	}
	sent := false
	for _, c := range rt.containers {
		sent = c.signal(sig) || sent
	}
	if !sent {
		return fmt.Errorf("nodeagent: pod %s/%s has no running process", namespace, name)
	}
	return nil
}

// PID returns the process ID of the named pod's container, 0 when none runs.
func (a *Agent) PID(namespace, name, containerName string) int {
	rt := a.runtime(podKey(namespace, name))
	if rt == nil {
		return 0
	}
	for _, c := range rt.containers {
		if c.spec.Name == containerName {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.pid
		}
	}
	return 0
}

// LogPath returns the log file of the named pod's container ("" when the
// pod does not run here).
func (a *Agent) LogPath(namespace, name, containerName string) string {
	rt := a.runtime(podKey(namespace, name))
	if rt == nil {
		return ""
	}
	for _, c := range rt.containers {
		if c.spec.Name == containerName {
			return c.logPath
		}
	}
	return ""
}

// stopAll stops every process when the agent stops.
func (a *Agent) stopAll() {
	a.mu.Lock()
	rts := make([]*podRuntime, 0, len(a.runtimes))
	for _, rt := range a.runtimes {
		rts = append(rts, rt)
	}
	a.runtimes = map[string]*podRuntime{}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, rt := range rts {
		wg.Add(1)
		go func() { defer wg.Done(); rt.terminate(a.opts.ShutdownGrace) }()
	}
	wg.Wait()
	a.log.Info("stopped all pods", "count", len(rts))
}

// nowSec is the current time at the API's resolution (whole seconds), so
// that a status read back compares equal to the one written.
func nowSec() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

package nodeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// defaultGrace is used when a pod vanished without a deletion timestamp
// (forcibly deleted) and its grace period is unknown.
const defaultGrace = 30 * time.Second

// syncPod makes one pod's process match its object: start it, refresh its
// volumes, report its status, or stop it and remove the pod.
func (a *Agent) syncPod(ctx context.Context, key string) error {
	if claim, ok := strings.CutPrefix(key, claimPrefix); ok {
		return a.syncClaim(ctx, claim)
	}
	ns, name, _ := strings.Cut(key, "/")
	pod, err := a.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		a.forgetGone(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("nodeagent: pod %s: %w", key, err)
	}
	if pod.Spec.NodeName != a.opts.NodeName {
		return nil
	}
	rt := a.runtime(key)
	if rt != nil && rt.uid != pod.UID {
		// An earlier pod of the same name is still stopping.
		return a.retireOld(key, rt)
	}
	if pod.DeletionTimestamp != nil {
		return a.terminatePod(ctx, pod, rt)
	}
	if rt == nil {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return nil
		}
		if rt, err = a.startPod(pod); err != nil {
			return err
		}
	} else if a.sourcesDue(pod, rt) {
		if err := a.writeSourceVolumes(pod, rt); err != nil {
			return err
		}
	}
	if pod, err = a.annotatePorts(ctx, pod, rt); err != nil {
		return err
	}
	return a.updateStatus(ctx, pod, rt)
}

func (a *Agent) runtime(key string) *podRuntime {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runtimes[key]
}

// forgetGone stops the process of a pod removed from the API without going
// through graceful deletion.
func (a *Agent) forgetGone(key string) {
	a.mu.Lock()
	rt := a.runtimes[key]
	delete(a.runtimes, key)
	a.mu.Unlock()
	if rt != nil {
		go rt.terminate(defaultGrace)
	}
}

func (a *Agent) retireOld(key string, rt *podRuntime) error {
	go rt.terminate(defaultGrace)
	if !rt.exited() {
		return fmt.Errorf("nodeagent: %s: previous pod %s still stopping", key, rt.uid)
	}
	a.mu.Lock()
	if a.runtimes[key] == rt {
		delete(a.runtimes, key)
	}
	a.mu.Unlock()
	a.queue.Add(key)
	return nil
}

// terminatePod gives the process its grace period (SIGTERM, then SIGKILL)
// and, once it exited, removes the pod as the kubelet does.
func (a *Agent) terminatePod(ctx context.Context, pod *corev1.Pod, rt *podRuntime) error {
	if rt != nil {
		grace := time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds,
			ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30))) * time.Second
		go rt.terminate(grace)
		if !rt.exited() {
			return nil // rt notifies when the process is gone
		}
	}
	err := a.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("nodeagent: removing pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	a.mu.Lock()
	if rt != nil && a.runtimes[podKey(pod.Namespace, pod.Name)] == rt {
		delete(a.runtimes, podKey(pod.Namespace, pod.Name))
	}
	a.mu.Unlock()
	a.log.Info("pod removed", "pod", podKey(pod.Namespace, pod.Name), "uid", pod.UID)
	return nil
}

// annotatePorts publishes the pod's local port map and returns the pod as
// stored after the change.
func (a *Agent) annotatePorts(ctx context.Context, pod *corev1.Pod, rt *podRuntime) (*corev1.Pod, error) {
	want, err := json.Marshal(rt.portAddrs)
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	if pod.Annotations[PortsAnnotation] == string(want) {
		return pod, nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{PortsAnnotation: string(want)},
	}})
	if err != nil {
		return nil, fmt.Errorf("nodeagent: %w", err)
	}
	pod, err = a.kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("nodeagent: annotating %s/%s: %w", rt.key, rt.uid, err)
	}
	return pod, nil
}

// podsMounting lists the keys of this node's pods that mount the named
// ConfigMap or Secret.
func (a *Agent) podsMounting(ns, name string) []string {
	if a.pods == nil {
		return nil
	}
	pods, err := a.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return nil
	}
	var keys []string
	for _, p := range pods {
		for _, v := range p.Spec.Volumes {
			if (v.ConfigMap != nil && v.ConfigMap.Name == name) || (v.Secret != nil && v.Secret.SecretName == name) {
				keys = append(keys, podKey(p.Namespace, p.Name))
				break
			}
		}
	}
	return keys
}

// PortMap returns the local address of each container port of pod, from
// the PortsAnnotation the agent writes (keys as PortKey).
func PortMap(pod *corev1.Pod) (map[string]string, error) {
	v, ok := pod.Annotations[PortsAnnotation]
	if !ok {
		return nil, fmt.Errorf("nodeagent: pod %s/%s has no %s annotation yet", pod.Namespace, pod.Name, PortsAnnotation)
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("nodeagent: pod %s/%s: %s: %w", pod.Namespace, pod.Name, PortsAnnotation, err)
	}
	return maps.Clone(m), nil
}

// sourcesDue says whether a sync refreshes the pod's ConfigMap and Secret
// volumes: always, unless KubeletTiming, where (as the kubelet) only a
// change of the Pod object's labels or annotations, or the periodic resync
// (every SourceResync), does. The agent's own port annotation does not count.
func (a *Agent) sourcesDue(pod *corev1.Pod, rt *podRuntime) bool {
	if !a.opts.KubeletTiming {
		return true
	}
	ann := maps.Clone(pod.Annotations)
	delete(ann, PortsAnnotation)
	meta := fmt.Sprint(pod.Labels, ann)
	round := a.resyncs.Load()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if meta == rt.sourcesMeta && round == rt.sourcesRound {
		return false
	}
	rt.sourcesMeta, rt.sourcesRound = meta, round
	return true
}

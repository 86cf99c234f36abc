package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/controllers/status"
)

// queryBrokers asks every ready broker pod which configuration generation
// it applied, for the ConfigApplied condition and the status totals.
func (r *MQTTBrokerReconciler) queryBrokers(ctx context.Context, p *pass) error {
	b := p.broker
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(b.Namespace), client.MatchingLabels(resources.SelectorLabels(b))); err != nil {
		return err
	}
	r.refreshPods(ctx, p, pods.Items)
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !podReady(pod) || !pod.DeletionTimestamp.IsZero() {
			continue
		}
		st, err := r.Brokers.BrokerStatus(ctx, pod, p.adminToken)
		p.obs.Brokers = append(p.obs.Brokers, status.BrokerReport{
			Pod: pod.Name, ConfigGeneration: st.ConfigGeneration, Version: st.Version,
			RefusedGeneration: st.RefusedConfigGeneration, RefusedError: st.RefusedConfigError,
			Sessions: st.SessionsOnline + st.SessionsOffline, QueuedMessages: st.QueuedMessages, Err: err,
			Storage: status.StorageReport{Used: st.Storage.Used, Budget: st.Storage.Budget,
				VolumeFree: st.Storage.VolumeFree, Pressure: st.Storage.Pressure},
		})
		if err == nil && st.LastReloadError != "" {
			p.problem(v1alpha1.ReasonInvalidConfig, "broker %s refused its configuration file and runs on the previous one: %s",
				pod.Name, st.LastReloadError)
		}
	}
	s := status.Summarize(p.obs.Brokers)
	b.Status.ReadyReplicas = 0
	if p.obs.StatefulSet != nil {
		b.Status.ReadyReplicas = p.obs.StatefulSet.Status.ReadyReplicas
	}
	if s.Version != "" {
		b.Status.Version = s.Version
	}
	b.Status.AppliedConfigGeneration = s.AppliedConfigGeneration
	if s.Answered > 0 {
		// 0 is a count like any other (kubectl showed a blank column for
		// it when the fields were plain omitempty integers).
		b.Status.Sessions = ptr.To(s.Sessions)
		b.Status.QueuedMessages = ptr.To(s.QueuedMessages)
	}
	return nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

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
// it applied, for the ConfigApplied condition, and for its figures (the
// status totals and status.stats); each pod at most once per
// StatusMinInterval unless a generation is awaited (statusCache).
func (r *MQTTBrokerReconciler) queryBrokers(ctx context.Context, p *pass) error {
	b := p.broker
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(b.Namespace), client.MatchingLabels(resources.SelectorLabels(b))); err != nil {
		return err
	}
	r.refreshPods(ctx, p, pods.Items)
	key := client.ObjectKeyFromObject(b)
	r.statuses.keep(key, pods.Items)
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !podReady(pod) || !pod.DeletionTimestamp.IsZero() {
			continue
		}
		rd := r.statuses.read(ctx, key, pod, b.Generation, r.now(), r.statusMinInterval(),
			func(ctx context.Context) (BrokerStatus, error) { return r.Brokers.BrokerStatus(ctx, pod, p.adminToken) })
		p.obs.Brokers = append(p.obs.Brokers, report(pod.Name, rd))
		if rd.err == nil && rd.st.LastReloadError != "" {
			p.problem(v1alpha1.ReasonInvalidConfig, "broker %s refused its configuration file and runs on the previous one: %s",
				pod.Name, rd.st.LastReloadError)
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
	if s.Counted > 0 {
		// 0 is a count like any other (kubectl showed a blank column for
		// it when the fields were plain omitempty integers).
		b.Status.Sessions = ptr.To(s.Sessions)
		b.Status.QueuedMessages = ptr.To(s.QueuedMessages)
	}
	// While no broker answers with figures, the last ones stay, with their
	// age (a handover's successor is ready before it serves: its zeros are
	// not the cluster's).
	if st := status.Stats(p.obs.Brokers); st != nil {
		status.KeepObservedAt(b.Status.Stats, st, r.statusRefresh())
		b.Status.Stats = st
	}
	return nil
}

// report turns one pod's answer into what the status package decides on.
func report(pod string, rd statusRead) status.BrokerReport {
	st := rd.st
	r := status.BrokerReport{
		Pod: pod, ConfigGeneration: st.ConfigGeneration, Version: st.Version,
		RefusedGeneration: st.RefusedConfigGeneration, RefusedError: st.RefusedConfigError,
		Sessions: st.SessionsOnline + st.SessionsOffline, QueuedMessages: st.QueuedMessages, Err: rd.err,
		NoFigures: st.Cluster != nil && !st.Cluster.Serving,
		Stats: status.StatsReport{ReadAt: rd.at, SessionsOnline: st.SessionsOnline, SessionsOffline: st.SessionsOffline,
			QueuedBytes: st.QueuedBytes, FullestQueue: st.FullestQueueRatio},
	}
	if sg := st.Storage; sg != nil {
		r.Storage = status.StorageReport{Used: sg.Used, Budget: sg.Budget, VolumeFree: sg.VolumeFree, Pressure: sg.Pressure, Reported: true}
	}
	if st.TopQueues != nil {
		r.Stats.TopQueues = make([]status.QueueReport, 0, len(st.TopQueues))
		for _, q := range st.TopQueues {
			r.Stats.TopQueues = append(r.Stats.TopQueues, status.QueueReport{ClientID: q.ClientID, Messages: q.Messages, Bytes: q.Bytes, Policy: q.Policy})
		}
	}
	if d := st.RecentDrops; d != nil {
		r.Stats.RecentDrops = &status.DropReport{WindowSeconds: d.WindowSeconds, ByReason: d.ByReason}
	}
	return r
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

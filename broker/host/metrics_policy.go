package host

import (
	"slices"

	"github.com/bollard-io/bollard/broker/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the queue policies (queues.policies, broker/engine/policy.go),
// exported by the broker collector (metrics.go), from engine.Stats.Policies. The policy label takes the names of
// the applied policies and "default" (sessions matching none): at most
// config.MaxQueuePolicies+1 values.
var (
	descPolicyQueuedMessages = prometheus.NewDesc("bollard_policy_queued_messages",
		"Messages queued for the sessions of a queue policy, together.", []string{"policy"}, nil)
	descPolicyQueuedBytes = prometheus.NewDesc("bollard_policy_queued_bytes",
		"Bytes of messages queued for the sessions of a queue policy, together (what its storeBudgetPercent share bounds).",
		[]string{"policy"}, nil)
	descPolicyStoreBudget = prometheus.NewDesc("bollard_policy_store_budget_bytes",
		"A queue policy's share of the store budget (storeBudgetPercent of queues.maxStoreBytes); 0: none of its own.",
		[]string{"policy"}, nil)
	descPolicyDropped = prometheus.NewDesc("bollard_policy_dropped_messages_total",
		"Messages the sessions of a queue policy discarded without delivery, by reason (as bollard_dropped_messages_total).",
		[]string{"policy", "reason"}, nil)
)

// policyDescs are the descriptors of the queue policy metrics.
var policyDescs = []*prometheus.Desc{descPolicyQueuedMessages, descPolicyQueuedBytes, descPolicyStoreBudget, descPolicyDropped}

// policyDropReasons are the drop reasons of sessions (all but
// not_authorized, which refuses a publisher), exported at zero for every
// policy.
var policyDropReasons = slices.DeleteFunc(slices.Clone(knownDropReasons), func(r string) bool { return r == engine.DropNotAuthorized })

// collectPolicies exports the queue policy metrics from st; the queued
// figures only when this broker holds the sessions (see Collect).
func collectPolicies(ch chan<- prometheus.Metric, st engine.Stats, holds bool) {
	for _, p := range st.Policies {
		if holds {
			ch <- prometheus.MustNewConstMetric(descPolicyQueuedMessages, prometheus.GaugeValue, float64(p.QueuedMessages), p.Name)
			ch <- prometheus.MustNewConstMetric(descPolicyQueuedBytes, prometheus.GaugeValue, float64(p.QueuedBytes), p.Name)
		}
		ch <- prometheus.MustNewConstMetric(descPolicyStoreBudget, prometheus.GaugeValue, float64(p.StoreBudget), p.Name)
		reasons := slices.Clone(policyDropReasons)
		for r := range p.Drops {
			if !slices.Contains(reasons, r) {
				reasons = append(reasons, r)
			}
		}
		slices.Sort(reasons)
		for _, r := range reasons {
			ch <- prometheus.MustNewConstMetric(descPolicyDropped, prometheus.CounterValue, float64(p.Drops[r]), p.Name, r)
		}
	}
}

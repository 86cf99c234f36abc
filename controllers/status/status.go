package status

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// Problem is something that keeps the cluster from matching the spec. Any
// problem makes the broker Degraded.
type Problem struct {
	// Reason is a v1alpha1.Reason* constant.
	Reason  string
	Message string
}

// BrokerReport is what one running broker pod said on GET /v1/status.
type BrokerReport struct {
	// Pod is the pod's name.
	Pod string
	// ConfigGeneration is the configuration generation the broker applied.
	ConfigGeneration int64
	// RefusedGeneration and RefusedError: the newest configuration
	// generation the broker refused (0 when it could not read one), and
	// why; RefusedError is "" when it refused nothing since it last
	// applied a configuration.
	RefusedGeneration int64
	RefusedError      string
	// Version, Sessions and QueuedMessages are informational.
	Version        string
	Sessions       int64
	QueuedMessages int64
	// NoFigures: the broker holds no sessions to count (a cluster member
	// that does not serve, e.g. a readiness handover's successor, which is
	// ready before it leads). Its configuration generation counts; its
	// session, queue and drop figures (0) are not figures of the cluster.
	NoFigures bool
	// Storage is what the broker said of its store budget.
	Storage StorageReport
	// Stats are the rest of the broker's figures, for status.stats.
	Stats StatsReport
	// Err is set when the broker could not be asked.
	Err error
}

// StorageReport is a broker's store budget and disk use, in bytes.
type StorageReport struct {
	Used, Budget, VolumeFree int64
	// Pressure: the broker is at 95% of its budget or more, or its volume
	// below the reserve; it refuses new offline messages at the budget.
	Pressure bool
	// Reported is false when the broker's answer had no storage part.
	Reported bool
}

// Observed is everything the reconciler saw in one pass.
type Observed struct {
	// Generation is the MQTTBroker's metadata.generation, which is also the
	// configuration generation rendered into the ConfigMap.
	Generation int64
	// Replicas is the desired number of broker pods.
	Replicas int32
	// Paused is true when the paused annotation is set.
	Paused bool
	// StatefulSet is the broker's StatefulSet as last read; nil if absent.
	StatefulSet *appsv1.StatefulSet
	// Problems found while reconciling.
	Problems []Problem
	// Expanding lists claims whose capacity is below their request.
	Expanding []string
	// Brokers are the reports of the ready broker pods.
	Brokers []BrokerReport
	// RenderError is set when the spec renders a configuration the
	// broker's rules refuse: the operator did not write it, so no broker
	// will ever apply this generation.
	RenderError string
	// Cluster is what the members of a cluster (replicas 3 or 5)
	// reported; nil for a single node.
	Cluster *ClusterObservation
}

// ClusterObservation is a cluster's health as the operator assessed it.
type ClusterObservation struct {
	// Leader is the pod that leads and serves; "" when none does.
	Leader string
	// Voters, Healthy and Quorum: the voting members of the leader's
	// configuration, how many are caught up (the leader included), and
	// their majority.
	Voters, Healthy, Quorum int
	// Outdated is how many members do not run the current pod template.
	Outdated int
	// Settled is true when the members match the spec (nothing to add,
	// remove or roll); Next says what the operator does or waits for.
	Settled bool
	Next    string
}

// Conditions returns existing with the five conditions set from o. Only a
// condition whose status changes gets now as its LastTransitionTime.
func Conditions(existing []metav1.Condition, o Observed, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, len(existing))
	copy(out, existing)
	set := func(c metav1.Condition) {
		c.ObservedGeneration = o.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&out, c)
	}
	if o.Paused {
		// Nothing was observed beyond the annotation: say so, and leave the
		// other conditions as the last reconcile left them.
		set(Progressing(o))
		return out
	}
	set(Ready(o))
	set(Progressing(o))
	set(Degraded(o))
	set(ConfigApplied(o))
	set(StoragePressure(o))
	return out
}

// StoragePressure is True when any broker that answered reports storage
// pressure, Unknown when none answered, False otherwise.
func StoragePressure(o Observed) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionStoragePressure, Status: metav1.ConditionUnknown}
	var pressed []string
	answered := 0
	for _, r := range sortedReports(o.Brokers) {
		if r.Err != nil {
			continue
		}
		answered++
		if s := r.Storage; s.Pressure {
			pressed = append(pressed, fmt.Sprintf("%s uses %s of %s (volume: %s free)", r.Pod, mib(s.Used), budget(s.Budget), mib(s.VolumeFree)))
		}
	}
	switch {
	case answered == 0:
		c.Reason, c.Message = v1alpha1.ReasonNoRunningBrokers, "no broker answered to report its storage"
	case len(pressed) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonStorageBudgetReached
		c.Message = "new messages for offline sessions are refused at the budget: " + strings.Join(pressed, "; ")
	default:
		// No figures: they change all the time, and the condition would
		// be rewritten on every reconcile.
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonStorageWithinBudget
		c.Message = fmt.Sprintf("%d broker(s) within their store budget and volume reserve", answered)
	}
	return c
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func budget(b int64) string {
	if b <= 0 {
		return "no budget"
	}
	return "a budget of " + mib(b)
}

// Ready is True when every desired replica runs the current template and
// passes its readiness probe.
func Ready(o Observed) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	sts := o.StatefulSet
	if cl := o.Cluster; cl != nil && sts != nil {
		return clusterReady(c, cl)
	}
	switch {
	case sts == nil:
		c.Reason, c.Message = v1alpha1.ReasonStatefulSetMissing, "the broker's StatefulSet does not exist yet"
	case rolledOut(o) && sts.Status.ReadyReplicas >= o.Replicas:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonAllReplicasReady
		c.Message = fmt.Sprintf("%d/%d replicas ready", sts.Status.ReadyReplicas, o.Replicas)
	default:
		c.Reason = v1alpha1.ReasonReplicasNotReady
		c.Message = fmt.Sprintf("%d/%d replicas ready, %d/%d updated", sts.Status.ReadyReplicas, o.Replicas,
			sts.Status.UpdatedReplicas, o.Replicas)
	}
	return c
}

// clusterReady: only the leader passes its readiness probe, so a cluster
// is Ready when a leader serves and a quorum of voters is caught up.
func clusterReady(c metav1.Condition, cl *ClusterObservation) metav1.Condition {
	switch {
	case cl.Leader == "":
		c.Reason, c.Message = v1alpha1.ReasonNoLeader, "no member reports a leader that serves (an election, or a majority of the members down)"
	case cl.Healthy < cl.Quorum:
		c.Reason = v1alpha1.ReasonQuorumUnhealthy
		c.Message = fmt.Sprintf("%s leads, but only %d of %d voters are caught up (a quorum is %d)", cl.Leader, cl.Healthy, cl.Voters, cl.Quorum)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonLeaderServing
		c.Message = fmt.Sprintf("%s leads; %d of %d voters caught up (a quorum is %d)", cl.Leader, cl.Healthy, cl.Voters, cl.Quorum)
	}
	return c
}

// rolledOut reports whether the StatefulSet controller has seen the current
// spec and every replica runs the current revision.
func rolledOut(o Observed) bool {
	s := o.StatefulSet
	if s == nil || s.Status.ObservedGeneration < s.Generation {
		return false
	}
	if s.Status.UpdatedReplicas < o.Replicas {
		return false
	}
	return s.Status.UpdateRevision == "" || s.Status.CurrentRevision == s.Status.UpdateRevision
}

// Progressing is True while a change is rolling out (a new pod template,
// pods becoming ready, volumes expanding), and False with reason Paused
// while the broker is paused.
func Progressing(o Observed) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue}
	switch {
	case o.Paused:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonPaused
		c.Message = fmt.Sprintf("reconciling is paused by the annotation %s=true", v1alpha1.PausedAnnotation)
	case o.Cluster != nil && o.StatefulSet != nil && !o.Cluster.Settled:
		// A cluster's StatefulSet updates OnDelete: the operator's roll,
		// not the StatefulSet's revisions, says what remains.
		c.Reason = v1alpha1.ReasonRollingOut
		c.Message = fmt.Sprintf("%d member(s) on an older pod template; %s", o.Cluster.Outdated, o.Cluster.Next)
	case o.Cluster != nil && o.StatefulSet != nil:
		if len(o.Expanding) > 0 {
			c.Reason = v1alpha1.ReasonExpanding
			c.Message = "expanding volume claims: " + strings.Join(o.Expanding, ", ")
			break
		}
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonRolloutComplete, "every member runs the current spec"
	case o.StatefulSet == nil || !rolledOut(o) || o.StatefulSet.Status.ReadyReplicas < o.Replicas:
		c.Reason, c.Message = v1alpha1.ReasonRollingOut, "rolling out the broker pods"
	case len(o.Expanding) > 0:
		c.Reason = v1alpha1.ReasonExpanding
		c.Message = "expanding volume claims: " + strings.Join(o.Expanding, ", ")
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonRolloutComplete, "every replica runs the current spec"
	}
	return c
}

// Degraded is True when any problem keeps the cluster from matching the
// spec; its reason is the first problem's and its message lists them all.
func Degraded(o Observed) metav1.Condition {
	if len(o.Problems) == 0 {
		return metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonAsExpected, Message: "no problems found"}
	}
	msgs := make([]string, len(o.Problems))
	for i, p := range o.Problems {
		msgs[i] = p.Message
	}
	return metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue,
		Reason: o.Problems[0].Reason, Message: strings.Join(msgs, "; ")}
}

// ConfigApplied is True when every running broker reports the current
// configuration generation; False with reason InvalidConfig when the
// operator could not render it, or ConfigRefused (and the broker's error)
// when a broker refused it; Unknown when one cannot be asked.
func ConfigApplied(o Observed) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionConfigApplied, Status: metav1.ConditionFalse}
	if o.RenderError != "" {
		c.Reason = v1alpha1.ReasonInvalidConfig
		c.Message = fmt.Sprintf("generation %d was not rendered, the brokers run the previous one: %s",
			o.Generation, truncate(o.RenderError, maxBrokerError))
		return c
	}
	if len(o.Brokers) == 0 {
		c.Reason, c.Message = v1alpha1.ReasonNoRunningBrokers, "no broker pod is ready to report its configuration"
		return c
	}
	var unreachable, refused, behind []string
	for _, r := range sortedReports(o.Brokers) {
		switch {
		case r.Err != nil:
			unreachable = append(unreachable, fmt.Sprintf("%s: %v", r.Pod, r.Err))
		case RefusedCurrent(r, o.Generation):
			refused = append(refused, fmt.Sprintf("%s refused configuration generation %d and runs generation %d: %s",
				r.Pod, max(r.RefusedGeneration, o.Generation), r.ConfigGeneration, truncate(r.RefusedError, maxBrokerError)))
		case r.ConfigGeneration < o.Generation:
			behind = append(behind, fmt.Sprintf("%s has applied generation %d", r.Pod, r.ConfigGeneration))
		}
	}
	switch {
	case len(refused) > 0:
		// A refusal is an answer: it wins over brokers that cannot be asked.
		c.Reason, c.Message = v1alpha1.ReasonConfigRefused, strings.Join(refused, "; ")
	case len(unreachable) > 0:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnreachable
		c.Message = "cannot read /v1/status: " + strings.Join(unreachable, "; ")
	case len(behind) > 0:
		c.Reason = v1alpha1.ReasonConfigPending
		c.Message = fmt.Sprintf("waiting for generation %d: %s", o.Generation, strings.Join(behind, "; "))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent
		c.Message = fmt.Sprintf("every broker runs configuration generation %d", o.Generation)
	}
	return c
}

// RefusedCurrent reports whether a broker's report says it refused the
// configuration of generation gen: it refused gen or a later one (a
// refused users file is reported with the generation it came with), or it
// refused a file whose generation it could not read and has not applied
// gen.
func RefusedCurrent(r BrokerReport, gen int64) bool {
	if r.Err != nil || r.RefusedError == "" {
		return false
	}
	return r.RefusedGeneration >= gen || (r.RefusedGeneration == 0 && r.ConfigGeneration < gen)
}

// maxBrokerError bounds how much of a broker's error a condition quotes.
const maxBrokerError = 1024

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sortedReports(rs []BrokerReport) []BrokerReport {
	out := append([]BrokerReport(nil), rs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out
}

// Summary is the informational part of the status: what the brokers report.
type Summary struct {
	Version                 string
	AppliedConfigGeneration int64
	Sessions                int64
	QueuedMessages          int64
	// Answered is how many brokers reported; Counted how many of them
	// reported figures (not NoFigures): with none, Sessions and
	// QueuedMessages are unknown, not 0.
	Answered, Counted int
}

// Summarize totals the reports of the brokers that answered. The applied
// generation is the lowest any of them reports.
func Summarize(rs []BrokerReport) Summary {
	var s Summary
	first := true
	for _, r := range sortedReports(rs) {
		if r.Err != nil {
			continue
		}
		if first || r.ConfigGeneration < s.AppliedConfigGeneration {
			s.AppliedConfigGeneration = r.ConfigGeneration
		}
		if first {
			s.Version = r.Version
		}
		first = false
		s.Answered++
		if r.NoFigures {
			continue
		}
		s.Counted++
		s.Sessions += r.Sessions
		s.QueuedMessages += r.QueuedMessages
	}
	return s
}

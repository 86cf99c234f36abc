package status

import (
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

func sts(gen, observed int64, ready, updated int32, cur, upd string) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{}
	s.Generation = gen
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: observed, ReadyReplicas: ready,
		UpdatedReplicas: updated, CurrentRevision: cur, UpdateRevision: upd}
	return s
}

func TestConditionsTable(t *testing.T) {
	healthy := sts(3, 3, 1, 1, "r1", "r1")
	current := []BrokerReport{{Pod: "b-0", ConfigGeneration: 5}}
	type want map[string]metav1.ConditionStatus
	cases := map[string]struct {
		o      Observed
		want   want
		reason map[string]string
	}{
		"no StatefulSet yet": {
			o:      Observed{Generation: 1, Replicas: 1},
			want:   want{"Ready": "False", "Progressing": "True", "Degraded": "False", "ConfigApplied": "False"},
			reason: map[string]string{"Ready": v1alpha1.ReasonStatefulSetMissing, "ConfigApplied": v1alpha1.ReasonNoRunningBrokers},
		},
		"cluster: a leader with a healthy quorum, one member behind, every member current": {
			o: Observed{Generation: 5, Replicas: 3, StatefulSet: sts(3, 3, 1, 1, "r1", "r2"), Brokers: current,
				Cluster: &ClusterObservation{Leader: "b-1", Voters: 3, Healthy: 2, Quorum: 2, Settled: true}},
			want:   want{"Ready": "True", "Progressing": "False", "Degraded": "False", "ConfigApplied": "True"},
			reason: map[string]string{"Ready": v1alpha1.ReasonLeaderServing, "Progressing": v1alpha1.ReasonRolloutComplete},
		},
		"cluster: no leader": {
			o: Observed{Generation: 5, Replicas: 3, StatefulSet: healthy, Brokers: current,
				Cluster: &ClusterObservation{Voters: 0, Healthy: 0, Quorum: 1, Settled: false, Next: "no member reports a leader that serves"}},
			want:   want{"Ready": "False", "Progressing": "True"},
			reason: map[string]string{"Ready": v1alpha1.ReasonNoLeader, "Progressing": v1alpha1.ReasonRollingOut},
		},
		"cluster: a leader without a healthy quorum": {
			o: Observed{Generation: 5, Replicas: 3, StatefulSet: healthy, Brokers: current,
				Cluster: &ClusterObservation{Leader: "b-0", Voters: 3, Healthy: 1, Quorum: 2, Settled: true}},
			want:   want{"Ready": "False"},
			reason: map[string]string{"Ready": v1alpha1.ReasonQuorumUnhealthy},
		},
		"cluster: rolling": {
			o: Observed{Generation: 5, Replicas: 3, StatefulSet: healthy, Brokers: current,
				Cluster: &ClusterObservation{Leader: "b-0", Voters: 3, Healthy: 3, Quorum: 2, Outdated: 2, Next: "rolling follower b-2"}},
			want:   want{"Ready": "True", "Progressing": "True"},
			reason: map[string]string{"Progressing": v1alpha1.ReasonRollingOut},
		},
		"healthy and current": {
			o:      Observed{Generation: 5, Replicas: 1, StatefulSet: healthy, Brokers: current},
			want:   want{"Ready": "True", "Progressing": "False", "Degraded": "False", "ConfigApplied": "True"},
			reason: map[string]string{"Progressing": v1alpha1.ReasonRolloutComplete, "ConfigApplied": v1alpha1.ReasonConfigCurrent},
		},
		"StatefulSet controller has not seen the new spec": {
			o:    Observed{Generation: 5, Replicas: 1, StatefulSet: sts(4, 3, 1, 1, "r1", "r1"), Brokers: current},
			want: want{"Ready": "False", "Progressing": "True"},
		},
		"rolling to a new revision": {
			o:      Observed{Generation: 5, Replicas: 1, StatefulSet: sts(3, 3, 0, 0, "r1", "r2")},
			want:   want{"Ready": "False", "Progressing": "True", "ConfigApplied": "False"},
			reason: map[string]string{"Progressing": v1alpha1.ReasonRollingOut},
		},
		"hot change not yet applied": {
			o:      Observed{Generation: 6, Replicas: 1, StatefulSet: healthy, Brokers: current},
			want:   want{"Ready": "True", "ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonConfigPending},
		},
		"hot change refused by the broker": {
			o: Observed{Generation: 6, Replicas: 1, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", ConfigGeneration: 5, RefusedGeneration: 6, RefusedError: "config: auth.acl[0].user: reserved"}}},
			want:   want{"Ready": "True", "ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonConfigRefused},
		},
		"users file refused at the current generation": {
			o: Observed{Generation: 5, Replicas: 1, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", ConfigGeneration: 5, RefusedGeneration: 5, RefusedError: "auth: invalid users file: line 1"}}},
			want:   want{"ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonConfigRefused},
		},
		"unreadable file refused": {
			o: Observed{Generation: 6, Replicas: 1, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", ConfigGeneration: 5, RefusedError: "config: yaml: line 1"}}},
			want:   want{"ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonConfigRefused},
		},
		"an older refusal does not hide a pending change": {
			o: Observed{Generation: 7, Replicas: 1, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", ConfigGeneration: 5, RefusedGeneration: 6, RefusedError: "bad"}}},
			want:   want{"ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonConfigPending},
		},
		"a refusal wins over an unreachable broker": {
			o: Observed{Generation: 6, Replicas: 1, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", Err: errors.New("connection refused")},
				{Pod: "b-1", ConfigGeneration: 5, RefusedGeneration: 6, RefusedError: "bad"}}},
			want:   want{"ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonConfigRefused},
		},
		"spec the operator could not render": {
			o: Observed{Generation: 6, Replicas: 1, StatefulSet: healthy, Brokers: current,
				RenderError: "resources: rendered broker config is invalid: config: auth.acl[0].user: reserved"},
			want:   want{"ConfigApplied": "False"},
			reason: map[string]string{"ConfigApplied": v1alpha1.ReasonInvalidConfig},
		},
		"broker unreachable": {
			o: Observed{Generation: 5, Replicas: 1, StatefulSet: healthy,
				Brokers: []BrokerReport{{Pod: "b-0", Err: errors.New("connection refused")}}},
			want: want{"ConfigApplied": "Unknown"},
		},
		"problems degrade": {
			o: Observed{Generation: 5, Replicas: 1, StatefulSet: healthy, Brokers: current, Problems: []Problem{
				{Reason: v1alpha1.ReasonShrinkRefused, Message: "cannot shrink"},
				{Reason: v1alpha1.ReasonSecretNotFound, Message: "no secret"},
			}},
			want:   want{"Degraded": "True", "Ready": "True"},
			reason: map[string]string{"Degraded": v1alpha1.ReasonShrinkRefused},
		},
		"expanding volume": {
			o:      Observed{Generation: 5, Replicas: 1, StatefulSet: healthy, Brokers: current, Expanding: []string{"data-b-0"}},
			want:   want{"Progressing": "True"},
			reason: map[string]string{"Progressing": v1alpha1.ReasonExpanding},
		},
		"storage within budget": {
			o: Observed{Generation: 5, Replicas: 1, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", ConfigGeneration: 5, Storage: StorageReport{Used: 10 << 20, Budget: 900 << 20, VolumeFree: 1 << 30}}}},
			want:   want{"StoragePressure": "False"},
			reason: map[string]string{"StoragePressure": v1alpha1.ReasonStorageWithinBudget},
		},
		"storage pressure on one broker": {
			o: Observed{Generation: 5, Replicas: 2, StatefulSet: healthy, Brokers: []BrokerReport{
				{Pod: "b-0", ConfigGeneration: 5, Storage: StorageReport{Used: 10 << 20, Budget: 900 << 20}},
				{Pod: "b-1", ConfigGeneration: 5, Storage: StorageReport{Used: 890 << 20, Budget: 900 << 20, Pressure: true}}}},
			want:   want{"StoragePressure": "True", "Ready": "False"},
			reason: map[string]string{"StoragePressure": v1alpha1.ReasonStorageBudgetReached},
		},
		"storage unknown": {
			o: Observed{Generation: 5, Replicas: 1, StatefulSet: healthy,
				Brokers: []BrokerReport{{Pod: "b-0", Err: errors.New("connection refused")}}},
			want:   want{"StoragePressure": "Unknown"},
			reason: map[string]string{"StoragePressure": v1alpha1.ReasonNoRunningBrokers},
		},
		"paused": {
			o:      Observed{Generation: 5, Replicas: 1, Paused: true},
			want:   want{"Progressing": "False"},
			reason: map[string]string{"Progressing": v1alpha1.ReasonPaused},
		},
	}
	now := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Conditions(nil, tc.o, now)
			for typ, status := range tc.want {
				c := meta.FindStatusCondition(got, typ)
				if c == nil {
					t.Fatalf("no %s condition in %v", typ, got)
				}
				if c.Status != status {
					t.Errorf("%s = %s (%s: %s), want %s", typ, c.Status, c.Reason, c.Message, status)
				}
				if c.ObservedGeneration != tc.o.Generation {
					t.Errorf("%s.observedGeneration = %d, want %d", typ, c.ObservedGeneration, tc.o.Generation)
				}
			}
			for typ, reason := range tc.reason {
				if c := meta.FindStatusCondition(got, typ); c == nil || c.Reason != reason {
					t.Errorf("%s reason = %v, want %s", typ, c, reason)
				}
			}
		})
	}
}

func TestPausedLeavesOtherConditions(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	before := Conditions(nil, Observed{Generation: 1, Replicas: 1, StatefulSet: sts(1, 1, 1, 1, "a", "a")}, t0)
	after := Conditions(before, Observed{Generation: 2, Replicas: 1, Paused: true}, metav1.NewTime(t0.Add(time.Minute)))
	if r := meta.FindStatusCondition(after, v1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue || r.ObservedGeneration != 1 {
		t.Errorf("Ready changed while paused: %v", r)
	}
}

func TestLastTransitionTimeMovesOnlyOnStatusChange(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	t2 := metav1.NewTime(t0.Add(2 * time.Minute))
	o := Observed{Generation: 1, Replicas: 1, StatefulSet: sts(1, 1, 0, 1, "a", "a")}
	c0 := Conditions(nil, o, t0)
	// Same status, different message: the transition time stays.
	o.StatefulSet = sts(1, 1, 0, 0, "a", "a")
	c1 := Conditions(c0, o, t1)
	if got := meta.FindStatusCondition(c1, v1alpha1.ConditionReady).LastTransitionTime; !got.Equal(&t0) {
		t.Errorf("Ready.lastTransitionTime = %v after a reconcile that kept it False, want %v", got, t0)
	}
	// Status flips: it moves.
	o.StatefulSet = sts(1, 1, 1, 1, "a", "a")
	c2 := Conditions(c1, o, t2)
	if got := meta.FindStatusCondition(c2, v1alpha1.ConditionReady).LastTransitionTime; !got.Equal(&t2) {
		t.Errorf("Ready.lastTransitionTime = %v after turning True, want %v", got, t2)
	}
	if got := meta.FindStatusCondition(c2, v1alpha1.ConditionDegraded).LastTransitionTime; !got.Equal(&t0) {
		t.Errorf("Degraded.lastTransitionTime = %v, never changed status, want %v", got, t0)
	}
	if len(c0) != 5 || len(c2) != 5 {
		t.Errorf("want five conditions, got %d and %d", len(c0), len(c2))
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]BrokerReport{
		{Pod: "b-1", ConfigGeneration: 4, Version: "v2", Sessions: 3, QueuedMessages: 10},
		{Pod: "b-0", ConfigGeneration: 5, Version: "v1", Sessions: 2, QueuedMessages: 1},
		{Pod: "b-2", Err: errors.New("down")},
	})
	want := Summary{Version: "v1", AppliedConfigGeneration: 4, Sessions: 5, QueuedMessages: 11, Answered: 2, Counted: 2}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
}

// TestConfigRefusedMessage: the condition quotes the broker's error and
// names the refused and the running generations; a long error is cut.
func TestConfigRefusedMessage(t *testing.T) {
	o := Observed{Generation: 6, Brokers: []BrokerReport{
		{Pod: "b-0", ConfigGeneration: 5, RefusedGeneration: 6, RefusedError: "config: auth.acl[0].user: reserved"}}}
	c := ConfigApplied(o)
	want := "b-0 refused configuration generation 6 and runs generation 5: config: auth.acl[0].user: reserved"
	if c.Message != want {
		t.Errorf("message %q, want %q", c.Message, want)
	}
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'x'
	}
	o.Brokers[0].RefusedError = string(long)
	if c := ConfigApplied(o); len(c.Message) > 1200 {
		t.Errorf("message of %d bytes", len(c.Message))
	}
}

package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// full is a report from a current broker.
func full(pod string, at time.Time, queued int64, top ...QueueReport) BrokerReport {
	if top == nil {
		top = []QueueReport{}
	}
	return BrokerReport{Pod: pod, QueuedMessages: queued,
		Storage: StorageReport{Used: 500 << 20, Budget: 1000 << 20, VolumeFree: 2 << 30, Reported: true},
		Stats: StatsReport{ReadAt: at, SessionsOnline: 2, SessionsOffline: 3, QueuedBytes: ptr.To(queued * 100),
			FullestQueue: ptr.To(0.5), TopQueues: top,
			RecentDrops: &DropReport{WindowSeconds: 300, ByReason: map[string]uint64{"queue_full": 2, "expired": 0}}}}
}

func TestStatsTotals(t *testing.T) {
	a := full("b-0", t0.Add(time.Second), 40, QueueReport{ClientID: "x", Messages: 30, Bytes: 3000},
		QueueReport{ClientID: "y", Messages: 10, Bytes: 1000, Policy: "telemetry"})
	b := full("b-1", t0, 7, QueueReport{ClientID: "x", Messages: 5, Bytes: 500}, QueueReport{ClientID: "z", Messages: 7, Bytes: 700})
	b.Storage.Used = 990 << 20 // the fuller store
	b.Stats.FullestQueue = ptr.To(1.0)
	down := BrokerReport{Pod: "b-2", Err: errors.New("connection refused")}
	s := Stats([]BrokerReport{a, b, down})
	want := &v1alpha1.BrokerStats{
		ObservedAt: s.ObservedAt, Pods: 2,
		SessionsOnline: ptr.To[int64](4), SessionsOffline: ptr.To[int64](6),
		QueuedMessages: ptr.To[int64](47), QueuedBytes: ptr.To[int64](4700), FullestQueuePercent: ptr.To[int32](100),
		Storage: &v1alpha1.StorageStats{Usage: "99% of 1000Mi", UsedBytes: 990 << 20, BudgetBytes: 1000 << 20, VolumeFreeBytes: ptr.To[int64](2 << 30)},
		Drops:   &v1alpha1.DropStats{WindowSeconds: 300, Total: 4, ByReason: map[string]int64{"queue_full": 4}},
		TopQueues: []v1alpha1.QueueStats{{ClientID: "x", Messages: 30, Bytes: 3000},
			{ClientID: "y", Messages: 10, Bytes: 1000, Policy: "telemetry"}, {ClientID: "z", Messages: 7, Bytes: 700}},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %s\nwant %s", dump(s), dump(want))
	}
	if !s.ObservedAt.Time.Equal(t0) {
		t.Errorf("observedAt %v, want the oldest read %v", s.ObservedAt, t0)
	}
}

// TestStatsSkipNonServingMember: a cluster member that answers but does not
// serve (a readiness handover's successor is ready before it leads) holds
// no sessions: its zeros are neither totalled nor, alone, reported.
func TestStatsSkipNonServingMember(t *testing.T) {
	leader := full("b-0", t0, 40, QueueReport{ClientID: "x", Messages: 30, Bytes: 3000})
	successor := BrokerReport{Pod: "b-1", ConfigGeneration: 3, NoFigures: true, Stats: StatsReport{ReadAt: t0, QueuedBytes: ptr.To[int64](0)}}
	both := Stats([]BrokerReport{leader, successor})
	alone := Stats([]BrokerReport{leader})
	if both == nil || !reflect.DeepEqual(both, alone) {
		t.Errorf("with the successor: %s\nwithout it: %s", dump(both), dump(alone))
	}
	if s := Stats([]BrokerReport{successor}); s != nil {
		t.Errorf("the successor alone: %s, want no figures (the last ones stay)", dump(s))
	}
	sum := Summarize([]BrokerReport{successor})
	if sum.Answered != 1 || sum.Counted != 0 || sum.AppliedConfigGeneration != 3 {
		t.Errorf("summary of the successor alone: %+v, want its generation and no counted figures", sum)
	}
	sum = Summarize([]BrokerReport{leader, successor})
	if sum.Answered != 2 || sum.Counted != 1 || sum.Sessions != leader.Sessions || sum.QueuedMessages != leader.QueuedMessages {
		t.Errorf("summary with the leader: %+v", sum)
	}
}

// TestStatsUnknownIsAbsent: with no answer there are no figures (the
// caller keeps the last ones), and a figure one answering broker did not
// report is left out rather than totalled from the others.
func TestStatsUnknownIsAbsent(t *testing.T) {
	if s := Stats([]BrokerReport{{Pod: "b-0", Err: errors.New("timeout")}}); s != nil {
		t.Errorf("no answer: %s", dump(s))
	}
	if s := Stats(nil); s != nil {
		t.Errorf("no pods: %s", dump(s))
	}
	older := BrokerReport{Pod: "b-1", QueuedMessages: 3, Stats: StatsReport{ReadAt: t0, SessionsOnline: 1}}
	s := Stats([]BrokerReport{full("b-0", t0, 4), older})
	if s.QueuedBytes != nil || s.FullestQueuePercent != nil || s.Drops != nil || s.TopQueues != nil {
		t.Errorf("figures the older broker lacks are reported: %s", dump(s))
	}
	if *s.QueuedMessages != 7 || *s.SessionsOnline != 3 || s.Storage == nil || s.Pods != 2 {
		t.Errorf("figures both report: %s", dump(s))
	}
	// Zero is a figure like any other.
	z := full("b-0", t0, 0)
	z.Stats.RecentDrops.ByReason = map[string]uint64{}
	s = Stats([]BrokerReport{z})
	if *s.QueuedMessages != 0 || *s.QueuedBytes != 0 || s.Drops == nil || s.Drops.Total != 0 || s.Drops.ByReason != nil {
		t.Errorf("an idle broker: %s", dump(s))
	}
}

// TestStatsBoundsWhatABrokerSays: a broker's answer cannot blow up the
// status: at most 10 queues, client IDs cut to 256 bytes, at most 16 drop
// reasons of at most 64 bytes.
func TestStatsBoundsWhatABrokerSays(t *testing.T) {
	r := full("b-0", t0, 1)
	r.Stats.TopQueues = nil
	for i := range 50 {
		r.Stats.TopQueues = append(r.Stats.TopQueues, QueueReport{ClientID: strings.Repeat("é", 40000) + fmt.Sprint(i), Messages: int64(i)})
	}
	r.Stats.RecentDrops.ByReason = map[string]uint64{strings.Repeat("r", 65): 1, "bad\xff": 1}
	for i := range 30 {
		r.Stats.RecentDrops.ByReason[fmt.Sprintf("reason%02d", i)] = uint64(i + 1)
	}
	s := Stats([]BrokerReport{r})
	if len(s.TopQueues) != MaxTopQueues || s.TopQueues[0].Messages != 49 {
		t.Fatalf("%d queues, first %d", len(s.TopQueues), s.TopQueues[0].Messages)
	}
	for _, q := range s.TopQueues {
		if len(q.ClientID) > 256 || !strings.HasSuffix(q.ClientID, "...") {
			t.Errorf("client ID of %d bytes: %.20q", len(q.ClientID), q.ClientID)
		}
	}
	if len(s.Drops.ByReason) != 16 || s.Drops.ByReason["reason29"] != 30 || s.Drops.ByReason["reason00"] != 0 {
		t.Errorf("reasons kept: %v", s.Drops.ByReason)
	}
	if s.Drops.Total != 467 { // 1+...+30 and the two refused keys: all counted in the total
		t.Errorf("total %d", s.Drops.Total)
	}
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		used, budget int64
		want         string
	}{
		{368 << 20, 900 << 20, "40% of 900Mi"},
		{900 << 20, 900 << 20, "100% of 900Mi"},
		{368 << 20, 0, "368Mi"},
		{512, 0, "512"},
		{3 << 29, 0, "1.5Gi"},
		{10 << 30, 20 << 30, "50% of 20Gi"},
	} {
		if got := Usage(c.used, c.budget); got != c.want {
			t.Errorf("Usage(%d, %d) = %q, want %q", c.used, c.budget, got, c.want)
		}
	}
}

func dump(s *v1alpha1.BrokerStats) string {
	if s == nil {
		return "nil"
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestStatsDropsSaturate(t *testing.T) {
	r := full("b-0", t0, 1)
	r.Stats.RecentDrops.ByReason = map[string]uint64{"a": 1 << 63, "b": 1<<64 - 1}
	if s := Stats([]BrokerReport{r, r}); s.Drops.Total != 1<<63-1 || s.Drops.ByReason["a"] != 1<<63-1 {
		t.Errorf("drops %+v", *s.Drops)
	}
}

func TestKeepObservedAt(t *testing.T) {
	prev := Stats([]BrokerReport{full("b-0", t0, 4)})
	same := Stats([]BrokerReport{full("b-0", t0.Add(20*time.Second), 4)})
	KeepObservedAt(prev, same, 30*time.Second)
	if !same.ObservedAt.Time.Equal(t0) {
		t.Errorf("same figures within the period: observedAt %v, want %v", same.ObservedAt, t0)
	}
	later := Stats([]BrokerReport{full("b-0", t0.Add(30*time.Second), 4)})
	KeepObservedAt(prev, later, 30*time.Second)
	if !later.ObservedAt.Time.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("a period later: observedAt %v", later.ObservedAt)
	}
	changed := Stats([]BrokerReport{full("b-0", t0.Add(time.Second), 5)})
	KeepObservedAt(prev, changed, 30*time.Second)
	if !changed.ObservedAt.Time.Equal(t0.Add(time.Second)) || *changed.QueuedMessages != 5 {
		t.Errorf("new figures: observedAt %v", changed.ObservedAt)
	}
	KeepObservedAt(nil, changed, 30*time.Second) // no previous figures: nothing to keep
}

package history_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history"
)

var t0 = time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// run builds a history through a Recorder.
type run struct {
	t   *testing.T
	rec *history.Recorder
}

func newRun(t *testing.T, opts ...history.Option) *run {
	return &run{t: t, rec: history.NewRecorder(opts...)}
}

func (r *run) subscribe(sub string, qos byte, since int, pubs ...string) {
	r.t.Helper()
	if err := r.rec.Subscribe(history.Subscription{Subscriber: sub, QoS: qos, Publishers: pubs, Since: at(since)}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *run) publish(pub string, seq uint64, qos byte, topic string, sent int, o history.Outcome) {
	r.t.Helper()
	if err := r.rec.Sent(history.Attempt{Publisher: pub, Seq: seq, QoS: qos, Topic: topic, Sent: at(sent)}); err != nil {
		r.t.Fatal(err)
	}
	if o != history.Pending {
		if err := r.rec.Settle(pub, seq, o, at(sent+1), ""); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *run) deliver(sub, topic, pub string, seq uint64, qos byte, dup bool, ms int) {
	r.t.Helper()
	b, err := history.Encode(pub, seq)
	if err != nil {
		r.t.Fatal(err)
	}
	r.rec.Received(sub, topic, b, qos, dup, at(ms))
}

// clean is a run that keeps every promise: publisher a (QoS 1, topic t/a)
// and b (QoS 2, t/b) each send 1..5 acknowledged, plus a failed a/6 never
// delivered and an unknown b/6 delivered; s1 subscribes at QoS 1, s2 at
// QoS 2; s1 gets one QoS 1 redelivery (DUP) of a/3 after a/5; a/0 was
// sent before the subscriptions and is not expected.
func clean(t *testing.T) *run {
	r := newRun(t)
	r.publish("a", 0, 1, "t/a", 0, history.Acked)
	r.subscribe("s1", 1, 10, "a", "b")
	r.subscribe("s2", 2, 10, "a", "b")
	for seq := uint64(1); seq <= 5; seq++ {
		ms := 100 * int(seq)
		r.publish("a", seq, 1, "t/a", ms, history.Acked)
		r.publish("b", seq, 2, "t/b", ms+50, history.Acked)
	}
	r.publish("a", 6, 1, "t/a", 600, history.Failed)
	r.publish("b", 6, 2, "t/b", 650, history.Unknown)
	for seq := uint64(1); seq <= 5; seq++ {
		ms := 1000 + 10*int(seq)
		r.deliver("s1", "t/a", "a", seq, 1, false, ms)
		r.deliver("s1", "t/b", "b", seq, 1, false, ms+1) // downgraded to the subscription's QoS 1
		r.deliver("s2", "t/a", "a", seq, 1, false, ms+2)
		r.deliver("s2", "t/b", "b", seq, 2, false, ms+3)
	}
	r.deliver("s1", "t/a", "a", 3, 1, true, 1100) // redelivery at QoS 1: allowed
	r.deliver("s2", "t/b", "b", 6, 2, false, 1200)
	return r
}

func TestCleanHistoryPasses(t *testing.T) {
	rep := clean(t).rec.Check()
	if !rep.OK() {
		t.Fatalf("clean history: %s", rep)
	}
	want := history.Report{
		Attempts: 13, Acked: 11, Failed: 1, Unknown: 1,
		Deliveries: 22, Expected: 20, Received: 20, Redelivered: 1, DupFlagged: 1, UnackedDelivered: 1,
	}
	if !equalCounts(rep, want) {
		t.Fatalf("counts:\n got %s\nwant %s", rep.Summary(), want.Summary())
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
}

func equalCounts(a, b history.Report) bool {
	a.Violations, b.Violations = nil, nil
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// Each case breaks the clean run in one way and must find exactly the
// named violations.
func TestEachViolationIsFound(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func(r *run)
		want   []string // Violation.String prefixes
	}{
		"lost": {
			mutate: func(r *run) {
				r.publish("a", 7, 1, "t/a", 700, history.Acked)
				r.deliver("s1", "t/a", "a", 7, 1, false, 1300) // s2 never gets it
			},
			want: []string{"lost: pub-a/7 at s2: acknowledged at QoS 1"},
		},
		"lost by both subscribers": {
			mutate: func(r *run) { r.publish("b", 7, 2, "t/b", 700, history.Acked) },
			want:   []string{"lost: pub-b/7 at s1", "lost: pub-b/7 at s2"},
		},
		"reordered": {
			mutate: func(r *run) {
				r.publish("b", 7, 2, "t/b", 700, history.Acked)
				r.publish("b", 8, 2, "t/b", 800, history.Acked)
				for _, s := range []string{"s1", "s2"} {
					q := map[string]byte{"s1": 1, "s2": 2}[s]
					r.deliver(s, "t/b", "b", 8, q, false, 1300)
					r.deliver(s, "t/b", "b", 7, q, false, 1301)
				}
			},
			want: []string{"reordered: pub-b/7 at s1: first delivered after seq 8", "reordered: pub-b/7 at s2"},
		},
		"QoS 2 delivered twice": {
			mutate: func(r *run) { r.deliver("s2", "t/b", "b", 4, 2, true, 1300) },
			want:   []string{"duplicated: pub-b/4 at s2: delivered 2 times at QoS 2"},
		},
		"QoS 0 delivered twice": {
			mutate: func(r *run) {
				r.publish("c", 1, 0, "t/c", 700, history.Unknown)
				r.subscribe("s1", 1, 10, "c")
				r.deliver("s1", "t/c", "c", 1, 0, false, 1300)
				r.deliver("s1", "t/c", "c", 1, 0, false, 1301)
			},
			want: []string{"duplicated: pub-c/1 at s1: delivered 2 times at QoS 0"},
		},
		"phantom": {
			mutate: func(r *run) {
				r.deliver("s1", "t/a", "a", 99, 1, false, 1300)
				r.deliver("s2", "t/z", "z", 1, 1, false, 1301)
			},
			want: []string{"phantom: pub-a/99 at s1", "phantom: pub-z/1 at s2"},
		},
		"wrong topic": {
			mutate: func(r *run) {
				r.publish("a", 7, 1, "t/a", 700, history.Acked)
				r.deliver("s1", "t/a", "a", 7, 1, false, 1300)
				r.deliver("s2", "t/other", "a", 7, 1, false, 1301)
			},
			want: []string{`mismatched: pub-a/7 at s2: sent on "t/a" at QoS 1 (effective QoS 1), delivered on "t/other" at QoS 1`},
		},
		"QoS above the subscription": {
			mutate: func(r *run) {
				r.publish("b", 7, 2, "t/b", 700, history.Acked)
				r.deliver("s1", "t/b", "b", 7, 2, false, 1300)
				r.deliver("s2", "t/b", "b", 7, 2, false, 1301)
			},
			want: []string{`mismatched: pub-b/7 at s1: sent on "t/b" at QoS 2 (effective QoS 1), delivered on "t/b" at QoS 2`},
		},
		"unsubscribed": {
			mutate: func(r *run) { r.deliver("s3", "t/a", "a", 1, 1, false, 1300) },
			want:   []string{"unsubscribed: pub-a/1 at s3"},
		},
		"malformed": {
			mutate: func(r *run) {
				r.rec.Received("s1", "t/a", []byte("seq-17"), 1, false, at(1300))
				r.rec.Received("s2", "t/a", nil, 1, false, at(1301))
			},
			want: []string{`malformed: at s1: on "t/a" at QoS 1: history: malformed payload "seq-17"`, "malformed: at s2"},
		},
		"session lost": {
			mutate: func(r *run) {
				r.rec.Anomaly(history.Anomaly{Kind: history.SessionLost, Subscriber: "s1", Detail: "session present = false", At: at(1300)})
			},
			want: []string{"session-lost: at s1: session present = false (at 12:00:01.300)"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := clean(t)
			c.mutate(r)
			rep := r.rec.Check()
			var got []string
			for _, v := range rep.Violations {
				got = append(got, v.String())
			}
			if len(got) != len(c.want) {
				t.Fatalf("violations:\n%s\nwant %d: %q", strings.Join(got, "\n"), len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("violation %d = %q, want prefix %q", i, got[i], w)
				}
			}
			if rep.OK() || rep.Err() == nil {
				t.Fatal("a report with violations is OK")
			}
		})
	}
}

// What is allowed stays allowed: unacknowledged messages may or may not
// arrive; messages sent before a subscription need not arrive; QoS 0
// (effective) messages may be lost; a redelivery of an old message at
// QoS 1 is not a reorder.
func TestAllowedIsNotViolation(t *testing.T) {
	r := newRun(t)
	r.publish("a", 1, 1, "t/a", 0, history.Acked) // before the subscription
	r.subscribe("s1", 1, 10, "a", "q")
	r.subscribe("s0", 0, 10, "a") // QoS 0 subscription: may lose everything
	r.publish("a", 2, 1, "t/a", 100, history.Failed)
	r.publish("a", 3, 1, "t/a", 200, history.Unknown)
	r.publish("a", 4, 1, "t/a", 300, history.Pending)
	r.publish("a", 5, 1, "t/a", 400, history.Acked)
	r.publish("q", 1, 0, "t/q", 500, history.Unknown) // QoS 0 publish: never expected
	r.deliver("s1", "t/a", "a", 3, 1, false, 1000)
	r.deliver("s1", "t/a", "a", 5, 1, false, 1001)
	r.deliver("s1", "t/a", "a", 3, 1, true, 1002) // redelivery after a later one
	rep := r.rec.Check()
	if !rep.OK() {
		t.Fatal(rep)
	}
	if rep.Expected != 1 || rep.Received != 1 || rep.UnackedDelivered != 1 || rep.Pending != 1 || rep.Redelivered != 1 {
		t.Fatalf("counts: %s", rep.Summary())
	}
}

// A subscription declared twice keeps its earliest time.
func TestEarliestSubscriptionCounts(t *testing.T) {
	r := newRun(t)
	r.subscribe("s1", 1, 10, "a")
	r.subscribe("s1", 1, 500, "a")
	r.publish("a", 1, 1, "t/a", 100, history.Acked)
	rep := r.rec.Check()
	if rep.Count(history.Lost) != 1 {
		t.Fatalf("want a/1 lost (sent after the first subscription): %s", rep)
	}
}

func TestRecorderRefusesMisuse(t *testing.T) {
	r := history.NewRecorder()
	ok := history.Attempt{Publisher: "a", Seq: 1, QoS: 1, Topic: "t", Sent: at(0)}
	if err := r.Sent(ok); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"sent twice":        r.Sent(ok),
		"bad publisher":     r.Sent(history.Attempt{Publisher: "a/b", Seq: 2, Sent: at(0)}),
		"QoS 3":             r.Sent(history.Attempt{Publisher: "a", Seq: 3, QoS: 3, Sent: at(0)}),
		"no time":           r.Sent(history.Attempt{Publisher: "a", Seq: 4}),
		"already settled":   r.Sent(history.Attempt{Publisher: "a", Seq: 5, Sent: at(0), Outcome: history.Acked}),
		"settle unsent":     r.Settle("a", 9, history.Acked, at(1), ""),
		"settle pending":    r.Settle("a", 1, history.Pending, at(1), ""),
		"no subscriber":     r.Subscribe(history.Subscription{QoS: 1, Since: at(0)}),
		"subscribe QoS 3":   r.Subscribe(history.Subscription{Subscriber: "s", QoS: 3, Since: at(0)}),
		"subscribe no time": r.Subscribe(history.Subscription{Subscriber: "s", QoS: 1}),
		"subscribe bad ID":  r.Subscribe(history.Subscription{Subscriber: "s", QoS: 1, Since: at(0), Publishers: []string{""}}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := r.Settle("a", 1, history.Acked, at(1), ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Settle("a", 1, history.Failed, at(2), ""); err == nil {
		t.Error("settled twice")
	}
	if h := r.History(); len(h.Attempts) != 1 || h.Attempts[0].Outcome != history.Acked {
		t.Fatalf("history: %+v", h.Attempts)
	}
}

// Past its limit the recorder refuses attempts, drops other events, and
// the check says the history is incomplete.
func TestRecorderLimit(t *testing.T) {
	r := newRun(t, history.WithLimit(3))
	r.subscribe("s1", 1, 0, "a")
	r.publish("a", 1, 1, "t/a", 10, history.Acked)
	r.publish("a", 2, 1, "t/a", 20, history.Acked)
	r.deliver("s1", "t/a", "a", 1, 1, false, 30)
	if err := r.rec.Sent(history.Attempt{Publisher: "a", Seq: 3, QoS: 1, Topic: "t/a", Sent: at(40)}); !errors.Is(err, history.ErrFull) {
		t.Fatalf("Sent past the limit: %v", err)
	}
	r.deliver("s1", "t/a", "a", 2, 1, false, 50) // dropped
	rep := r.rec.Check()
	if rep.Count(history.Truncated) != 1 || rep.Count(history.Lost) != 1 || !strings.Contains(rep.String(), "2 events were not recorded") {
		t.Fatalf("report: %s", rep)
	}
}

// String lists the first violations and says how many more there are.
func TestReportStringIsBounded(t *testing.T) {
	r := newRun(t)
	r.subscribe("s1", 1, 0, "a")
	for seq := range uint64(50) {
		r.publish("a", seq, 1, "t/a", 10, history.Acked)
	}
	rep := r.rec.Check()
	if rep.Count(history.Lost) != 50 || strings.Count(rep.String(), "\n  lost:") != 20 || !strings.Contains(rep.String(), "... and 30 more") {
		t.Fatalf("report:\n%s", rep)
	}
}

// The recorder is safe for concurrent use: publishers and subscribers
// record at once (run with -race), nothing is lost.
func TestRecorderConcurrent(t *testing.T) {
	rec := history.NewRecorder()
	const pubs, n = 4, 500
	var ids []string
	for p := range pubs {
		ids = append(ids, fmt.Sprintf("p%d", p))
	}
	if err := rec.Subscribe(history.Subscription{Subscriber: "s", QoS: 1, Publishers: ids, Since: at(0)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			for seq := range uint64(n) {
				if err := rec.Sent(history.Attempt{Publisher: id, Seq: seq, QoS: 1, Topic: "t/" + id, Sent: time.Now()}); err != nil {
					t.Error(err)
					return
				}
				b, _ := history.Encode(id, seq)
				rec.Received("s", "t/"+id, b, 1, false, time.Now())
				if err := rec.Settle(id, seq, history.Acked, time.Now(), ""); err != nil {
					t.Error(err)
				}
				if seq%100 == 0 {
					_ = rec.Check() // readers alongside writers
				}
			}
		})
	}
	wg.Wait()
	rep := rec.Check()
	if !rep.OK() || rep.Expected != pubs*n || rep.Received != pubs*n {
		t.Fatalf("report: %s", rep)
	}
}

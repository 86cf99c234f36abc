package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// TestSubSetMatchesMap runs random puts and deletes across the slice/map
// threshold against a map.
func TestSubSetMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ss subSet
	model := map[string]store.Subscription{}
	for i := range 5000 {
		f := fmt.Sprintf("t/%d", rng.IntN(3*fewSubs))
		if rng.IntN(3) == 0 {
			_, want := model[f]
			delete(model, f)
			if got := ss.del(f); got != want {
				t.Fatalf("op %d: del(%s) = %v, want %v", i, f, got, want)
			}
		} else {
			sub := store.Subscription{Filter: f, QoS: byte(rng.IntN(3)), ID: uint32(i)}
			model[f] = sub
			ss.put(sub)
		}
		if ss.len() != len(model) || ss.has(f) != (model[f].Filter != "") {
			t.Fatalf("op %d: len %d has %v, model %d", i, ss.len(), ss.has(f), len(model))
		}
		got := ss.appendTo(nil)
		slices.SortFunc(got, func(a, b store.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
		var want []store.Subscription
		for _, s := range model {
			want = append(want, s)
		}
		slices.SortFunc(want, func(a, b store.Subscription) int { return strings.Compare(a.Filter, b.Filter) })
		if !slices.Equal(got, want) {
			t.Fatalf("op %d: subscriptions %v, want %v", i, got, want)
		}
	}
}

func TestUndoSubscribe(t *testing.T) {
	f := newFixture(t, 60, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	var b store.Batch
	if _, err := f.s.Subscribe(store.Subscription{Filter: "a", QoS: 1}, 0, &b); err != nil {
		t.Fatal(err)
	}
	f.commit(&b)
	prev, ok := f.s.Subscription("a")
	if !ok || prev.QoS != 1 {
		t.Fatalf("Subscription(a) = %+v, %v", prev, ok)
	}
	// A SUBSCRIBE replacing a and adding b whose batch fails.
	var failed store.Batch
	for _, sub := range []store.Subscription{{Filter: "a", QoS: 0}, {Filter: "b", QoS: 2}} {
		if _, err := f.s.Subscribe(sub, 0, &failed); err != nil {
			t.Fatal(err)
		}
	}
	f.s.UndoSubscribe("b", nil)
	f.s.UndoSubscribe("a", &prev)
	subs := f.s.Subscriptions()
	if len(subs) != 1 || subs[0].Filter != "a" || subs[0].QoS != 1 {
		t.Fatalf("after undo: %+v", subs)
	}
	if _, ok := f.s.Subscription("b"); ok {
		t.Fatal("b still subscribed")
	}
}

package session

import (
	"iter"
	"slices"
	"strconv"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// queued checks an account's sums.
func queued(t *testing.T, a *Account, msgs, bytes int64) {
	t.Helper()
	if m, b := a.Queued(); m != msgs || b != bytes {
		t.Fatalf("account %s holds %d messages, %d bytes; want %d, %d", a.Name(), m, b, msgs, bytes)
	}
}

func TestAccountFollowsItsSessions(t *testing.T) {
	a, b := NewAccount("a"), NewAccount("b")
	f1 := newFixture(t, 3600, Limits{MaxMessages: 10, MaxBytes: 1 << 20, Account: a})
	f2 := newFixture(t, 3600, Limits{MaxMessages: 10, MaxBytes: 1 << 20, Account: a})
	size := (&store.Message{Topic: "t", Payload: []byte("x")}).Size()
	for range 3 {
		f1.offer("x", 1, false)
	}
	f2.offer("x", 1, false)
	queued(t, a, 4, 4*size)

	// An uncommitted entry counts until its batch fails.
	r := f2.offer("x", 1, true)
	queued(t, a, 5, 5*size)
	f2.s.Settle(r.Settle, false)
	queued(t, a, 4, 4*size)

	// A reload moves a session's queue to its new account.
	f1.s.SetLimits(&Limits{MaxMessages: 10, MaxBytes: 1 << 20, Account: b})
	queued(t, a, 1, size)
	queued(t, b, 3, 3*size)
	if f1.s.Info().Policy != "b" {
		t.Errorf("Info().Policy = %q", f1.s.Info().Policy)
	}

	// Delivery and acknowledgement leave the account.
	if got := f1.drainAll(); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	queued(t, b, 0, 0)

	// A released session leaves the account for good: counting and later
	// limits no longer reach it.
	f2.s.Release()
	queued(t, a, 0, 0)
	f2.s.SetLimits(&Limits{MaxMessages: 10, MaxBytes: 1 << 20, Account: a})
	f2.s.CountDrops(DropSessionExpired, 1)
	queued(t, a, 0, 0)
	if len(a.Drops()) != 0 || f2.drops[DropSessionExpired] != 1 {
		t.Errorf("drops after release: account %v, hooks %v", a.Drops(), f2.drops)
	}
}

func TestAccountCountsDrops(t *testing.T) {
	a := NewAccount("a")
	f := newFixture(t, 3600, Limits{MaxMessages: 2, MaxBytes: 1 << 20, Policy: DropNewest, Account: a})
	for i := range 5 {
		f.offer(strconv.Itoa(i), 1, false)
	}
	f.s.CountDrops(DropSessionExpired, 2)
	if d := a.Drops(); d[DropQueueFull] != 3 || d[DropSessionExpired] != 2 || len(d) != 2 {
		t.Errorf("account drops %v", d)
	}
}

// TestAccountBudget: at the account's budget an offline persistent
// session handles a new message by its overflow policy; an online one and
// a session of another account are not bound by it.
func TestAccountBudget(t *testing.T) {
	size := (&store.Message{Topic: "t", Payload: []byte("x")}).Size()
	for _, tc := range []struct {
		policy   Policy
		rejected bool
	}{{DropNewest, false}, {RejectPublish, true}} {
		t.Run(strconv.Itoa(int(tc.policy)), func(t *testing.T) {
			a := NewAccount("a")
			a.SetBudget(3 * size)
			lim := Limits{MaxMessages: 100, MaxBytes: 1 << 20, Policy: tc.policy, Account: a}
			f1, f2 := newFixture(t, 3600, lim), newFixture(t, 3600, lim)
			f1.offer("x", 1, false)
			f1.offer("x", 1, false)
			f2.offer("x", 1, false)
			r := f2.offer("x", 1, false)
			if r.Dropped != DropPolicyStoreFull || r.Rejected != tc.rejected {
				t.Fatalf("at the budget: %+v", r)
			}
			if f2.drops[DropPolicyStoreFull] != 1 || a.Drops()[DropPolicyStoreFull] != 1 {
				t.Errorf("drops %v, account %v", f2.drops, a.Drops())
			}
			queued(t, a, 3, 3*size)

			other := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20, Account: NewAccount("b")})
			if r := other.offer("x", 1, false); r.Dropped != "" {
				t.Errorf("another account's session: %+v", r)
			}
			if err := f1.s.Attach(10, func() {}); err != nil {
				t.Fatal(err)
			}
			if r := f1.offer("x", 1, false); r.Dropped != "" {
				t.Errorf("an online session: %+v", r)
			}
			// A larger budget (a reload) admits the next message.
			a.SetBudget(10 * size)
			if r := f2.offer("x", 1, false); r.Dropped != "" {
				t.Errorf("under the new budget: %+v", r)
			}
		})
	}
}

func TestChooseSeesSubscriptions(t *testing.T) {
	a, fw := NewAccount("default"), NewAccount("fw")
	f := newFixture(t, 3600, Limits{MaxMessages: 10, Account: a})
	choose := func(clientID, _ string, filters iter.Seq[string]) *Limits {
		var fs []string
		for x := range filters {
			fs = append(fs, x)
		}
		if clientID == "c" && slices.Contains(fs, "fw/x") {
			return &Limits{MaxMessages: 1, Policy: DropNewest, Account: fw}
		}
		return &Limits{MaxMessages: 10, Account: a}
	}
	if got := f.s.Choose(choose); got != "default" {
		t.Fatalf("no subscription: %q", got)
	}
	var b store.Batch
	if _, err := f.s.Subscribe(store.Subscription{Filter: "fw/x", QoS: 1}, 10, &b); err != nil {
		t.Fatal(err)
	}
	f.commit(&b)
	if got := f.s.Choose(choose); got != "fw" {
		t.Fatalf("subscribed to fw/x: %q", got)
	}
	f.offer("1", 1, false)
	if r := f.offer("2", 1, false); r.Dropped != DropQueueFull {
		t.Errorf("the chosen limits do not apply: %+v", r)
	}
	queued(t, fw, 1, (&store.Message{Topic: "t", Payload: []byte("1")}).Size())
}

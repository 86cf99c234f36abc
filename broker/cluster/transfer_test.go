package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/test/poll"
)

// TestTransferLeadershipToNamedMember: the leader hands leadership to
// the member it is told, not merely to the most up-to-date one; a name
// that is not another voter is refused, and so is a member that does
// not lead.
func TestTransferLeadershipToNamedMember(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	for _, bad := range []string{"", "self", "nobody"} {
		askLeader(t, c, func(l int) error {
			to := bad
			if bad == "self" {
				to = c.members[l].ID
			}
			err := c.nodes[l].TransferLeadershipTo(to)
			if !errors.Is(err, ErrInvalidMember) && !errors.Is(err, ErrNotLeader) {
				t.Fatalf("transfer to %q: err = %v, want ErrInvalidMember", to, err)
			}
			return err
		})
	}
	// Both followers, in turn, so that the chosen one is not always the
	// one Raft would have picked.
	for range 2 {
		var f int
		askLeader(t, c, func(l int) error {
			f = (l + 2) % 3
			if c.nodes[(l+1)%3].raft.State() != raft.Leader {
				if err := c.nodes[(l+1)%3].TransferLeadershipTo(c.members[f].ID); !errors.Is(err, ErrNotLeader) {
					t.Fatalf("transfer asked of a follower: err = %v, want ErrNotLeader", err)
				}
			}
			return c.nodes[l].TransferLeadershipTo(c.members[f].ID)
		})
		poll.Wait(t, 10*time.Second, 5*time.Millisecond, "the named member to serve", func() bool {
			s, _ := c.nodes[f].State()
			return s.Serving
		})
	}
}

// askLeader runs ask with the serving leader's index until it returns
// anything but ErrNotLeader, failing the test on another error (other
// than ErrInvalidMember, which ask may expect). Leadership can move on
// its own between finding the leader and asking it (an election while
// the cluster forms, a heartbeat delayed past the election timeout
// under -race on a loaded machine): the question then goes to the next
// leader.
func askLeader(t *testing.T, c *testCluster, ask func(l int) error) {
	t.Helper()
	var err error
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, "a leader to answer", func() bool {
		err = ask(c.leader())
		return !errors.Is(err, ErrNotLeader)
	})
	if err != nil && !errors.Is(err, ErrInvalidMember) {
		t.Fatal(err)
	}
}

// TestSilentMemberCountsFromLeadership: a leader that has never heard
// from a member (down since before it was elected) reports no lag for it
// (unknown) and its silence as at least how long it has led, growing; a
// member it hears from has both.
func TestSilentMemberCountsFromLeadership(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	down, next := (l+1)%3, (l+2)%3
	c.stop(down)
	askLeader(t, c, func(l int) error {
		if l == next {
			return nil // leadership moved there already
		}
		return c.nodes[l].TransferLeadershipTo(c.members[next].ID)
	})
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the named member to serve", func() bool {
		s, _ := c.nodes[next].State()
		return s.Serving
	})
	silence := func() (time.Duration, MemberStatus) {
		t.Helper()
		for _, m := range c.nodes[next].Status().Members {
			if m.ID == c.members[down].ID {
				if m.LastContactMilli == nil {
					t.Fatalf("no last contact for the silent member: %+v", m)
				}
				return time.Duration(*m.LastContactMilli) * time.Millisecond, m
			}
		}
		t.Fatal("the silent member is not in the leader's status")
		return 0, MemberStatus{}
	}
	first, m := silence()
	if m.Lag != nil || m.MatchIndex != nil {
		t.Fatalf("the leader reports a lag for a member it never heard from: %+v", m)
	}
	time.Sleep(300 * time.Millisecond)
	if second, _ := silence(); second < first+250*time.Millisecond {
		t.Fatalf("the silence did not grow: %v then %v", first, second)
	}
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the old leader's lag", func() bool {
		for _, m := range c.nodes[next].Status().Members {
			if m.ID == c.members[l].ID {
				return m.Lag != nil && m.LastContactMilli != nil
			}
		}
		return false
	})
}

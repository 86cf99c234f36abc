package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/poll"
)

// TestTransferLeadershipToNamedMember: the leader hands leadership to
// the member it is told, not merely to the most up-to-date one; a name
// that is not another voter is refused, and so is a member that does
// not lead.
func TestTransferLeadershipToNamedMember(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	for _, bad := range []string{"", c.members[l].ID, "nobody"} {
		if err := c.nodes[l].TransferLeadershipTo(bad); !errors.Is(err, ErrInvalidMember) {
			t.Fatalf("transfer to %q: err = %v, want ErrInvalidMember", bad, err)
		}
	}
	// Both followers, in turn, so that the chosen one is not always the
	// one Raft would have picked.
	for range 2 {
		l = c.leader()
		f := (l + 2) % 3
		if err := c.nodes[(l+1)%3].TransferLeadershipTo(c.members[f].ID); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("transfer asked of a follower: err = %v, want ErrNotLeader", err)
		}
		if err := c.nodes[l].TransferLeadershipTo(c.members[f].ID); err != nil {
			t.Fatalf("transfer %s -> %s: %v", c.members[l].ID, c.members[f].ID, err)
		}
		poll.Wait(t, 10*time.Second, 5*time.Millisecond, "the named member to serve", func() bool {
			s, _ := c.nodes[f].State()
			return s.Serving
		})
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
	if err := c.nodes[l].TransferLeadershipTo(c.members[next].ID); err != nil {
		t.Fatal(err)
	}
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

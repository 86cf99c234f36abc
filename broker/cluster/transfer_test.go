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

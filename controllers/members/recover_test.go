package members

import (
	"fmt"
	"testing"
)

// TestRegrowAfterRecovery follows the operator after a lost quorum was
// recovered from one survivor (docs/operations.md, "When a cluster loses
// its quorum"): while no leader serves it waits; once the survivor leads
// a one-voter configuration it waits for the lost members' pods, adds
// each back (asked again until it votes), and never removes a member,
// deletes a pod or moves leadership on the way; the StatefulSet keeps
// spec.replicas pods throughout.
func TestRegrowAfterRecovery(t *testing.T) {
	for _, tc := range []struct{ replicas, survivor int }{{3, 0}, {3, 2}, {5, 1}, {5, 4}} {
		t.Run(fmt.Sprintf("replicas %d survivor %d", tc.replicas, tc.survivor), func(t *testing.T) {
			surv := fmt.Sprintf("mqb-%d", tc.survivor)
			in := cluster(tc.replicas, tc.survivor)
			// The lost members' pods are gone; the survivor cannot lead.
			in.Pods = []Pod{*pod(&in, surv)}
			v := in.Views[surv]
			v.Role, v.Serving, v.LeaderID = "follower", false, ""
			in.Views = map[string]View{surv: v}
			check := func(step string, want Kind) Action {
				t.Helper()
				a := Decide(in)
				if a.Kind != want {
					t.Fatalf("%s: %s (%s), want %s", step, a.Kind, a.Reason, want)
				}
				if n := Members(in, tc.replicas); n != tc.replicas {
					t.Fatalf("%s: the StatefulSet would keep %d pods, want %d", step, n, tc.replicas)
				}
				return a
			}
			check("leaderless survivor", Wait)

			// Recovered: the survivor leads a configuration of itself.
			cfg := []Member{{ID: surv, Voter: true}}
			setConfig := func() {
				v := in.Views[surv]
				v.Role, v.Serving, v.LeaderID, v.Term, v.Members = "leader", true, surv, 9, append([]Member(nil), cfg...)
				in.Views[surv] = v
			}
			setConfig()
			check("recovered, the others' pods gone", Wait)

			// The StatefulSet recreates the pods, empty; not yet running.
			for i := range tc.replicas {
				if i != tc.survivor {
					in.Pods = append(in.Pods, Pod{Name: fmt.Sprintf("mqb-%d", i), Ordinal: i, Current: true, Created: now})
				}
			}
			check("pods created", Wait)
			for i := range in.Pods {
				in.Pods[i].Running = true
			}

			// Each missing member is added, then asked again until it votes.
			for i := range tc.replicas {
				if i == tc.survivor {
					continue
				}
				name := fmt.Sprintf("mqb-%d", i)
				a := check("grow "+name, AddMember)
				if a.Member != name || a.Leader != surv {
					t.Fatalf("grow: %+v, want %s added through %s", a, name, surv)
				}
				cfg = append(cfg, Member{ID: name}) // a non-voter catching up
				setConfig()
				a = check("catching up "+name, AddMember)
				if a.Member != name {
					t.Fatalf("catching up: %+v", a)
				}
				cfg[len(cfg)-1] = Member{ID: name, Voter: true, Lag: ptr(uint64(0)), LastContact: ptr(now.Sub(now))}
				setConfig()
				in.Views[name] = View{Role: "follower", Term: 9, LeaderID: surv, Members: cfg}
			}
			check("regrown", Done)
			if h := Assess(in); h.Voters != tc.replicas || !h.HasQuorum() || h.Healthy != tc.replicas {
				t.Errorf("regrown health: %+v", h)
			}
		})
	}
}

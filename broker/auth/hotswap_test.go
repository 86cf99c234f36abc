package auth

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bollard-io/bollard/broker/access"
)

func mustACL(t *testing.T, rules ...access.Rule) *access.ACL {
	t.Helper()
	a, err := access.NewACL(rules)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestHotSwap shows the reload pattern: readers load the current policy
// from an atomic.Pointer while a writer swaps in new immutable values.
func TestHotSwap(t *testing.T) {
	type policy struct {
		authn Authenticator
		acl   *access.ACL
	}
	var current atomic.Pointer[policy]
	users, err := NewUsers(map[string]string{"alice": hash(t, "pw")})
	if err != nil {
		t.Fatal(err)
	}
	current.Store(&policy{NewFileAuthenticator(users, false), nil})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				p := current.Load()
				if _, err := p.authn.Authenticate(t.Context(), "c", "alice", []byte("pw"), true); err != nil {
					t.Error(err)
				}
				p.acl.CanPublish("alice", "c", "a/b")
				p.acl.CanSubscribe("alice", "c", "a/+")
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			acl := mustACL(t, access.Rule{User: "alice", Topic: fmt.Sprintf("a/%d", i), Kind: access.ReadWrite})
			current.Store(&policy{NewFileAuthenticator(users, i%2 == 0), acl})
		}
	})
	wg.Wait()
	if !current.Load().acl.CanPublish("alice", "c", "a/19") {
		t.Error("last policy not in effect")
	}
}

package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

// aclConfig is a broker with users alice and bob (password "pw"),
// anonymous clients allowed, and rules.
func aclConfig(t *testing.T, rules ...config.ACLRule) *config.Config {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:"+string(h)+"\nbob:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	yes := true
	cfg.Auth.AllowAnonymous = &yes
	cfg.Auth.UsersFile = users
	cfg.Auth.ACL = rules
	return cfg
}

// login connects as user ("" for anonymous).
func login(t *testing.T, b *testBroker, version byte, id, user string, expiry uint32) *rawClient {
	t.Helper()
	c := dialRaw(t, b.addr, version)
	p := &packet.Connect{ClientID: id, CleanStart: expiry == 0}
	if version < packet.V5 {
		p.CleanStart = expiry == 0 // cleanSession=0 makes a persistent session
	} else if expiry > 0 {
		p.Properties.SessionExpiryInterval = u32(expiry)
	}
	if user != "" {
		p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = true, user, true, []byte("pw")
	}
	if ack := c.connect(p); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v for %q", ack.ReasonCode, user)
	}
	return c
}

// expectPublish reads the next PUBLISH, acknowledges it, and checks its
// topic.
func expectPublish(t *testing.T, c *rawClient, topic string) *packet.Publish {
	t.Helper()
	p := c.recvPublish()
	if p.QoS == 1 {
		c.send(&packet.Puback{PacketID: p.PacketID})
	}
	if p.Topic != topic {
		t.Fatalf("received %q (%q), want %q", p.Topic, p.Payload, topic)
	}
	return p
}

// TestACLWildcardSubscriptionsFiltered is the interoperability case of
// issue 12: readwrite # for every user plus one deny rule. SUBSCRIBE # and
// +/+ are granted and do not carry the denied topic; SUBSCRIBE to the
// denied topic itself is refused (0x80 for 3.1.1, 0x87 for 5.0).
func TestACLWildcardSubscriptionsFiltered(t *testing.T) {
	for _, v := range []byte{packet.V311, packet.V5} {
		t.Run(map[byte]string{packet.V311: "3.1.1", packet.V5: "5.0"}[v], func(t *testing.T) {
			b := startBroker(t, aclConfig(t,
				config.ACLRule{User: "*", Topic: "#", Access: "readwrite"},
				config.ACLRule{User: "*", Topic: "test/nosubscribe", Access: "deny"},
				// The anonymous publisher may write the denied topic.
				config.ACLRule{User: "", Topic: "#", Access: "readwrite"},
			))
			sub := login(t, b, v, "sub", "alice", 0)
			ack := sub.subscribe(1, 0, packet.Subscription{Filter: "#", QoS: 1},
				packet.Subscription{Filter: "+/+", QoS: 1}, packet.Subscription{Filter: "test/nosubscribe", QoS: 1})
			refused := packet.NotAuthorized
			if v < packet.V5 {
				refused = packet.SubackFailure
			}
			want := []packet.ReasonCode{packet.GrantedQoS1, packet.GrantedQoS1, refused}
			for i := range want {
				if ack.ReasonCodes[i] != want[i] {
					t.Fatalf("SUBACK %v, want %v", ack.ReasonCodes, want)
				}
			}
			pub := login(t, b, packet.V5, "pub", "", 0)
			if codes := publishQoS1(t, pub, "test/nosubscribe", "denied"); codes[0] != packet.Success {
				t.Fatalf("anonymous publish: %v", codes)
			}
			if codes := publishQoS1(t, pub, "test/ok", "ok"); codes[0] != packet.Success {
				t.Fatalf("anonymous publish: %v", codes)
			}
			expectPublish(t, sub, "test/ok")
			sub.expectNothing(100 * time.Millisecond)
			if n := b.srv.Stats().Drops[DropReadDenied]; n != 1 {
				t.Errorf("read_denied drops = %d, want 1", n)
			}
			// Bob (also a "*" user) may not publish there either.
			bob := login(t, b, packet.V5, "bob", "bob", 0)
			if codes := publishQoS1(t, bob, "test/nosubscribe", "x"); codes[0] != packet.NotAuthorized {
				t.Errorf("publish to the denied topic: %v", codes)
			}
		})
	}
}

// TestACLRetainedFiltered: retained messages sent on subscribe are
// filtered by the subscriber's ACL like any other delivery.
func TestACLRetainedFiltered(t *testing.T) {
	b := startBroker(t, aclConfig(t,
		config.ACLRule{User: "*", Topic: "#", Access: "readwrite"},
		config.ACLRule{User: "*", Topic: "secret/#", Access: "deny"},
		config.ACLRule{User: "", Topic: "#", Access: "readwrite"},
	))
	pub := login(t, b, packet.V5, "pub", "", 0)
	for _, topic := range []string{"secret/a", "open/a"} {
		pub.send(&packet.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: topic, Payload: []byte("r")})
		if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.Success {
			t.Fatalf("retained publish to %s: %+v", topic, ack)
		}
	}
	sub := login(t, b, packet.V5, "sub", "alice", 0)
	sub.subscribe(1, 0, packet.Subscription{Filter: "+/a", QoS: 1})
	if p := expectPublish(t, sub, "open/a"); !p.Retain {
		t.Error("retained flag not set")
	}
	sub.expectNothing(100 * time.Millisecond)
}

// TestACLChangeWhileOffline: messages queued for a persistent session
// before its ACL changed are filtered when they are delivered.
func TestACLChangeWhileOffline(t *testing.T) {
	cfg := aclConfig(t,
		config.ACLRule{User: "*", Topic: "#", Access: "readwrite"},
		config.ACLRule{User: "", Topic: "#", Access: "readwrite"},
	)
	b := startBroker(t, cfg)
	sub := login(t, b, packet.V5, "persist", "alice", 3600)
	sub.subscribe(1, 0, packet.Subscription{Filter: "#", QoS: 1})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()
	waitOffline(t, b, "persist")
	pub := login(t, b, packet.V5, "pub", "", 0)
	publishQoS1(t, pub, "secret/x", "1")
	publishQoS1(t, pub, "open/x", "2")

	next := cfg.Clone()
	next.ConfigGeneration = 2
	next.Auth.ACL = append(next.Auth.ACL, config.ACLRule{User: "alice", Topic: "secret/#", Access: "deny"})
	if _, err := b.srv.ApplyConfig(next); err != nil {
		t.Fatal(err)
	}
	sub = login(t, b, packet.V5, "persist", "alice", 3600)
	expectPublish(t, sub, "open/x")
	sub.expectNothing(100 * time.Millisecond)
	if n := b.srv.Stats().Drops[DropReadDenied]; n != 1 {
		t.Errorf("read_denied drops = %d, want 1", n)
	}
	eventually(t, 5*time.Second, "queue emptied", func() bool {
		i, ok := b.srv.Session("persist")
		return ok && i.QueuedMessages == 0
	})
}

// TestACLAnonymousAndStar: "*" rules are for authenticated users only,
// "" rules for anonymous clients only.
func TestACLAnonymousAndStar(t *testing.T) {
	b := startBroker(t, aclConfig(t,
		config.ACLRule{User: "*", Topic: "users/#", Access: "readwrite"},
		config.ACLRule{User: "", Topic: "anon/#", Access: "readwrite"},
	))
	anon := login(t, b, packet.V5, "anon", "", 0)
	if codes := publishQoS1(t, anon, "users/x", "a"); codes[0] != packet.NotAuthorized {
		t.Errorf(`anonymous publish under a "*" rule: %v`, codes)
	}
	if codes := publishQoS1(t, anon, "anon/x", "a"); codes[0] != packet.Success {
		t.Errorf(`anonymous publish under a "" rule: %v`, codes)
	}
	alice := login(t, b, packet.V5, "alice", "alice", 0)
	if codes := publishQoS1(t, alice, "anon/x", "a"); codes[0] != packet.NotAuthorized {
		t.Errorf(`alice publish under a "" rule: %v`, codes)
	}
	if codes := publishQoS1(t, alice, "users/x", "a"); codes[0] != packet.Success {
		t.Errorf(`alice publish under a "*" rule: %v`, codes)
	}
}

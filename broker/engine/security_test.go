package engine

import (
	"context"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/auth"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

func TestACL(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.ACL = []config.ACLRule{ // the client is anonymous: rules for ""
		{User: "", Topic: "open/#", Access: "readwrite"},
		{User: "", Topic: "own/%c/#", Access: "readwrite"},
	}
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "acl", CleanStart: true})
	ack := c.subscribe(1, 0, packet.Subscription{Filter: "open/x", QoS: 1}, packet.Subscription{Filter: "secret", QoS: 1},
		packet.Subscription{Filter: "own/acl/+", QoS: 1}, packet.Subscription{Filter: "own/other/+", QoS: 1})
	want := []packet.ReasonCode{packet.GrantedQoS1, packet.NotAuthorized, packet.GrantedQoS1, packet.NotAuthorized}
	for i := range want {
		if ack.ReasonCodes[i] != want[i] {
			t.Fatalf("SUBACK %v, want %v", ack.ReasonCodes, want)
		}
	}
	codes := publishQoS1(t, c, "secret", "x")
	if codes[0] != packet.NotAuthorized {
		t.Fatalf("publish to a denied topic: %v", codes)
	}
	if b.srv.Stats().Drops[DropNotAuthorized] != 1 {
		t.Fatalf("drops %v", b.srv.Stats().Drops)
	}
}

// userAuth maps usernames to principals; the password must be "pw".
type userAuth struct{}

func (userAuth) Authenticate(_ context.Context, _, user string, pass []byte, _ bool) (string, error) {
	if user == "" {
		return "", nil
	}
	if string(pass) != "pw" {
		return "", auth.ErrBadCredentials
	}
	return user, nil
}

func TestAuthenticationAndSessionOwner(t *testing.T) {
	cfg := testConfig()
	tb := startBrokerWith(t, cfg, WithAuthenticator(userAuth{}, nil))
	login := func(id, user, pass string) *packet.Connack {
		c := dialRaw(t, tb.addr, packet.V5)
		return c.connect(&packet.Connect{ClientID: id, UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte(pass),
			Properties: packet.Properties{SessionExpiryInterval: u32(60)}})
	}
	if ack := login("x", "alice", "wrong"); ack.ReasonCode != packet.BadUserNameOrPassword {
		t.Fatalf("bad password: %v", ack.ReasonCode)
	}
	if ack := login("owned", "alice", "pw"); ack.ReasonCode != packet.Success {
		t.Fatalf("login: %v", ack.ReasonCode)
	}
	eventually(t, 5*time.Second, "first connection", func() bool { _, ok := tb.srv.Session("owned"); return ok })
	if ack := login("owned", "bob", "pw"); ack.ReasonCode != packet.NotAuthorized {
		t.Fatalf("another principal resumed the session: %v", ack.ReasonCode)
	}
	// 3.1.1 gets the legacy return code.
	c := dialRaw(t, tb.addr, packet.V311)
	if ack := c.connect(&packet.Connect{ClientID: "y", CleanStart: true, UsernameFlag: true, Username: "a", PasswordFlag: true, Password: []byte("no")}); ack.ReasonCode != packet.RefusedBadUsernameOrPassword {
		t.Fatalf("3.1.1 bad password: %v", ack.ReasonCode)
	}
}

func TestDrainSendsServerShuttingDown(t *testing.T) {
	b := startBroker(t, nil)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "drain", CleanStart: true})
	go b.stop()
	if d := c.expectClosed(); d == nil || d.ReasonCode != packet.ServerShuttingDown {
		t.Fatalf("got %+v", d)
	}
	eventually(t, 5*time.Second, "not ready", func() bool { return !b.srv.Ready() })
}

func TestKeepAliveTimeout(t *testing.T) {
	b := startBroker(t, nil)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "ka", CleanStart: true, KeepAlive: 1})
	start := time.Now()
	if d := c.expectClosed(); d == nil || d.ReasonCode != packet.KeepAliveTimeout {
		t.Fatalf("got %+v", d)
	}
	if el := time.Since(start); el < time.Second || el > 4*time.Second {
		t.Fatalf("closed after %v, want about 1.5s", el)
	}
}

func TestServerKeepAlive(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxKeepAlive = config.Duration(10 * time.Second)
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "ska", CleanStart: true, KeepAlive: 0})
	if ka := ack.Properties.ServerKeepAlive; ka == nil || *ka != 10 {
		t.Fatalf("server keep alive %v", ka)
	}
}

func TestMaxConnections(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 1
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "one", CleanStart: true})
	c2 := dialRaw(t, b.addr, packet.V5)
	if ack := c2.connect(&packet.Connect{ClientID: "two", CleanStart: true}); ack.ReasonCode != packet.ServerBusy {
		t.Fatalf("got %v", ack.ReasonCode)
	}
}

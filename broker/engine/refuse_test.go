package engine

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// TestRefuseConn: a member that does not serve answers every client's
// CONNECT with where to go instead (5.0) or "server unavailable", without
// authenticating it or creating a session, and counts it.
func TestRefuseConn(t *testing.T) {
	cfg := testConfig()
	srv, err := New(cfg, memstore.New(), WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	// No Start: a member that does not serve need not have recovered.
	withRef := listenWith(t, func(nc net.Conn) { srv.RefuseConn(nc, "leader.example:1883") })
	noRef := listenWith(t, func(nc net.Conn) { srv.RefuseConn(nc, "") })

	c := dialRaw(t, withRef, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "moved", CleanStart: true, Username: "nobody", Password: []byte("x")})
	if ack.ReasonCode != packet.UseAnotherServer || ack.Properties.ServerReference == nil ||
		*ack.Properties.ServerReference != "leader.example:1883" || ack.SessionPresent {
		t.Fatalf("5.0 CONNACK = %+v, want 0x9C with the server reference", ack)
	}
	c.expectClosed()

	c = dialRaw(t, noRef, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "moved", CleanStart: true}); ack.ReasonCode != packet.ServerUnavailable ||
		ack.Properties.ServerReference != nil {
		t.Fatalf("5.0 CONNACK without a reference = %+v, want 0x88", ack)
	}

	for _, v := range []byte{packet.V31, packet.V311} {
		c = dialRaw(t, withRef, v)
		if ack := c.connect(&packet.Connect{ClientID: "moved", CleanStart: true}); ack.ReasonCode != packet.RefusedServerUnavailable {
			t.Fatalf("version %d CONNACK = %+v, want return code 3", v, ack)
		}
		c.expectClosed()
	}

	// Not a CONNECT: closed without an answer.
	c = dialRaw(t, withRef, packet.V5)
	c.send(&packet.Pingreq{})
	if d := c.expectClosed(); d != nil {
		t.Fatalf("answered a PINGREQ with %+v", d)
	}

	st := srv.Stats()
	if n := st.Refusals[LimitNotServing]; n != 5 {
		t.Errorf("Refusals[%s] = %d, want 5", LimitNotServing, n)
	}
	if st.SessionsOnline+st.SessionsOffline != 0 || st.Connections != 0 {
		t.Errorf("a refused client left state: %+v", st)
	}
}

// TestRefuseConnBounded: connections that send no CONNECT are held at
// most limits.connectTimeout, and no more of them than ServeConn would
// hold open; the others are closed at once, and all are counted.
func TestRefuseConnBounded(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 4 // openConnLimit: 4 + 1 + 16 = 21
	cfg.Limits.ConnectTimeout = config.Duration(20 * time.Second)
	srv, err := New(cfg, memstore.New(), WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	addr := listenWith(t, func(nc net.Conn) { srv.RefuseConn(nc, "elsewhere:1883") })
	limit := openConnLimit(cfg.Limits.MaxConnections)
	for range limit {
		dialRaw(t, addr, packet.V5) // silent: holds its place until connectTimeout
	}
	eventually(t, 5*time.Second, "the silent connections to be held", func() bool {
		return srv.refusing.Load() == int64(limit)
	})
	over := dialRaw(t, addr, packet.V5)
	start := time.Now()
	over.expectClosed()
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("a connection over the bound was held %v", el)
	}
	if n := srv.Stats().Refusals[LimitNotServing]; n != uint64(limit)+1 {
		t.Errorf("Refusals[%s] = %d, want %d", LimitNotServing, n, limit+1)
	}
}

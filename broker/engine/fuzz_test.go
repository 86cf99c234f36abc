package engine

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// fuzzSeeds are valid sessions of packets (CONNECT first) in both
// versions, and every bad-input case, so the fuzzer starts from inputs
// that reach deep into the engine.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, v := range bothVersions {
		seeds = append(seeds, validSession(t, v, true), validSession(t, v, false))
	}
	for _, tc := range append(beforeConnectCases(t), afterConnectCases(t)...) {
		in := tc.send
		if tc.connect {
			c := encode(t, &packet.Connect{ProtocolVersion: tc.version, ClientID: "seed", CleanStart: true}, tc.version)
			in = append(c, in...)
		}
		seeds = append(seeds, in)
	}
	return seeds
}

// validSession is CONNECT, SUBSCRIBE, PUBLISH at each QoS (to itself),
// the QoS 2 flow, a retained message, PINGREQ and DISCONNECT.
func validSession(t testing.TB, v byte, clean bool) []byte {
	cp := &packet.Connect{ProtocolVersion: v, ClientID: "fz", CleanStart: clean, KeepAlive: 30,
		WillFlag: true, WillTopic: "will/fz", WillPayload: []byte("gone"), WillQoS: 1}
	if v == packet.V5 {
		cp.Properties.SessionExpiryInterval = u32(60)
		cp.Properties.TopicAliasMaximum = u16(4)
		cp.WillProperties.WillDelayInterval = u32(1)
	}
	pkts := []packet.Packet{
		cp,
		&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t/#", QoS: 2}, {Filter: "$share/g/t/+", QoS: 1}}},
		&packet.Publish{Topic: "t/0", Payload: []byte("zero")},
		&packet.Publish{QoS: 1, PacketID: 2, Topic: "t/1", Payload: []byte("one")},
		&packet.Publish{QoS: 2, PacketID: 3, Topic: "t/2", Payload: []byte("two"), Retain: true},
		&packet.Pubrel{PacketID: 3},
		&packet.Puback{PacketID: 1},
		&packet.Pubrec{PacketID: 2},
		&packet.Pubcomp{PacketID: 2},
		&packet.Unsubscribe{PacketID: 4, Filters: []string{"t/#"}},
		&packet.Pingreq{},
		&packet.Disconnect{},
	}
	if v == packet.V5 {
		pkts = append(pkts[:len(pkts)-1],
			&packet.Publish{Topic: "t/a", Properties: packet.Properties{TopicAlias: u16(1)}, Payload: []byte("a")},
			&packet.Publish{Properties: packet.Properties{TopicAlias: u16(1), MessageExpiryInterval: u32(5)}, Payload: []byte("b")},
			&packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage, Properties: packet.Properties{SessionExpiryInterval: u32(0)}})
	}
	var out []byte
	for _, p := range pkts {
		out = append(out, encode(t, p, v)...)
	}
	return out
}

// FuzzServerConn feeds arbitrary bytes to ServeConn over net.Pipe. The
// server must not panic, must end the connection once the client goes
// away, and must leave no goroutine behind (after Drain, none at all).
func FuzzServerConn(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := fuzzServer(t)
		serveBytes(t, srv, data)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Drain(ctx); err != nil {
			t.Fatalf("drain: %v", err)
		}
		waitServerGoroutinesGone(t, 5*time.Second)
	})
}

func fuzzServer(t *testing.T) *Server {
	cfg := testConfig()
	cfg.Limits.MaxPacketSize = 64 << 10
	cfg.Limits.ConnectTimeout = config.Duration(time.Second)
	cfg.Limits.MaxInflight = 4
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(cfg, memstore.New(), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv
}

// serveBytes writes data to a connection served by srv, reading whatever
// comes back, then closes it; ServeConn must return.
func serveBytes(t *testing.T, srv *Server, data []byte) {
	client, server := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(server)
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = client.Write(data)
	_ = client.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("ServeConn did not return after the client closed\n%s", buf[:runtime.Stack(buf, true)])
	}
}

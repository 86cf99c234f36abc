package mqtttest

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// fakeSubscribeServer answers one client's CONNECT and SUBSCRIBE, reads
// its DISCONNECT, and closes the connection after linger (when linger <
// 0, not until 5 s after the client closed its side). It returns its
// address and when it read the DISCONNECT.
func fakeSubscribeServer(t *testing.T, linger time.Duration) (string, <-chan time.Time) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	saw := make(chan time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		for {
			p, err := packets.ReadPacket(io.LimitReader(c, maxConnect))
			if err != nil {
				return
			}
			switch p.Type {
			case packets.CONNECT:
				_, _ = (&packets.Connack{Properties: &packets.Properties{}}).WriteTo(c)
			case packets.SUBSCRIBE:
				s := p.Content.(*packets.Subscribe)
				_, _ = (&packets.Suback{PacketID: s.PacketID, Reasons: []byte{1}, Properties: &packets.Properties{}}).WriteTo(c)
			case packets.DISCONNECT:
				saw <- time.Now()
				if linger < 0 {
					// Past the client's own close (its FIN), as a server
					// that never hangs up.
					_, _ = io.Copy(io.Discard, c)
					time.Sleep(5 * time.Second)
					return
				}
				time.Sleep(linger)
				return
			}
		}
	}()
	return ln.Addr().String(), saw
}

// SubscribeOffline returns only once the server closed the connection
// after the DISCONNECT (the session is offline by then), not as soon as
// the DISCONNECT is written.
func TestSubscribeOfflineWaitsForTheServerToClose(t *testing.T) {
	const linger = 400 * time.Millisecond
	addr, saw := fakeSubscribeServer(t, linger)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := SubscribeOffline(ctx, addr, "s", "t/#", 1, 60); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	select {
	case at := <-saw:
		if d := returned.Sub(at); d < linger {
			t.Fatalf("SubscribeOffline returned %s after the server read the DISCONNECT, before it closed (%s)", d, linger)
		}
	default:
		t.Fatal("the server never read a DISCONNECT")
	}
}

// A server that keeps the connection open after the DISCONNECT is an
// error, after serverCloseWait.
func TestSubscribeOfflineServerThatDoesNotClose(t *testing.T) {
	defer func(d time.Duration) { serverCloseWait = d }(serverCloseWait)
	serverCloseWait = 300 * time.Millisecond
	addr, _ := fakeSubscribeServer(t, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := SubscribeOffline(ctx, addr, "s", "t/#", 1, 60)
	if err == nil || !strings.Contains(err.Error(), "did not close") {
		t.Fatalf("SubscribeOffline = %v, want the server's not closing", err)
	}
	if d := time.Since(start); d < serverCloseWait || d > 10*time.Second {
		t.Fatalf("gave up after %s, want about %s", d, serverCloseWait)
	}
}

package mqttclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

func dialOnly(ctx context.Context, addr string, _ func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error) {
	return mqtttest.Dial(ctx, addr, "c", true, 0, nil)
}

// A hostile Server Reference is not followed: not loopback, not an
// address, too long.
func TestHostileReferencesAreRefused(t *testing.T) {
	for _, ref := range []string{
		"10.0.0.1:1883", "192.168.1.20:1883", "8.8.8.8:53", "example.com:1883", "localhost:1883",
		"127.0.0.1", "127.0.0.1:0", "127.0.0.1:x", ":1883", "[::]:1883", strings.Repeat("1", 300),
	} {
		t.Run(ref[:min(len(ref), 30)], func(t *testing.T) {
			r, err := mqtttest.StartRedirector(useAnotherServer, ref, false)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			c, _ := newConnector([]string{r.Addr()}, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if cl, _, err := c.connect(ctx, dialOnly); err == nil {
				_ = cl.Disconnect(&paho.Disconnect{})
				t.Fatal("connected")
			}
			if s := c.Stats(); s.RefusedReferences != 1 || s.Redirects != 0 || s.ConnectFailures != 1 || r.Connects() != 1 {
				t.Fatalf("stats %+v, %d connects", s, r.Connects())
			}
		})
	}
}

// A server that refers to itself is followed MaxRedirects times, then
// given up for the round.
func TestRedirectLoopIsBounded(t *testing.T) {
	r, err := mqtttest.StartRedirector(serverMoved, "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetReference(r.Addr() + " 127.0.0.1:1") // a list: the first is followed
	c, _ := newConnector([]string{r.Addr()}, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.connect(ctx, dialOnly); err == nil || !strings.Contains(err.Error(), "3 redirects in a row") {
		t.Fatalf("connect: %v", err)
	}
	if s := c.Stats(); s.Redirects != 3 || r.Connects() != 4 {
		t.Fatalf("stats %+v, %d connects, want 3 redirects and 4 connects", s, r.Connects())
	}
}

// Other refusals are not redirections, even with a reference.
func TestOtherRefusalsAreNotFollowed(t *testing.T) {
	r, err := mqtttest.StartRedirector(0x87, "127.0.0.1:1883", false) // Not authorized
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, _ := newConnector([]string{r.Addr()}, 0)
	if _, _, err := c.connect(t.Context(), dialOnly); err == nil {
		t.Fatal("connected")
	}
	if s := c.Stats(); s.Redirects != 0 || s.RefusedReferences != 0 || r.Connects() != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// The round order: a pending redirect, the last good address, then the
// list from a rotating start.
func TestCandidates(t *testing.T) {
	c, _ := newConnector([]string{"a", "b", "c"}, 0)
	for _, want := range []string{"a b c", "b c a", "c a b"} {
		if got := strings.Join(c.candidates(), " "); got != want {
			t.Fatalf("round = %s, want %s", got, want)
		}
	}
	c.last, c.redirect = "b", "z"
	if got := strings.Join(c.candidates(), " "); got != "z b a c" {
		t.Fatalf("round = %s", got)
	}
	if got := strings.Join(c.candidates(), " "); got != "b c a" {
		t.Fatalf("the redirect is used once: %s", got)
	}
}

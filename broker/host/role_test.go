package host

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

// switchRole is a Role the test switches.
type switchRole struct {
	mu      sync.Mutex
	serving bool
	ref     string
}

func (r *switchRole) Serving() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serving, r.ref
}

func (r *switchRole) set(serving bool, ref string) {
	r.mu.Lock()
	r.serving, r.ref = serving, ref
	r.mu.Unlock()
}

func withRole(r Role) func(*RunOptions) { return func(o *RunOptions) { o.Role = r } }

func readyzBody(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestSingleAlwaysServes(t *testing.T) {
	if ok, ref := (Single{}).Serving(); !ok || ref != "" {
		t.Fatalf("Single.Serving() = %v, %q", ok, ref)
	}
}

// TestRunnerFollowsRole: the listeners hand accepted connections to the
// engine while the role serves and to its refusal, with the role's server
// reference, while it does not; /readyz and bollard_ready follow the role.
func TestRunnerFollowsRole(t *testing.T) {
	role := &switchRole{serving: true}
	eng := newFakeEngine()
	f := startRunner(t, loopbackConfig(), eng, withRole(role))
	<-f.r.ReadyC()
	readyz, metrics := f.adminURL(t, "/readyz"), f.adminURL(t, "/metrics")
	dial := func() {
		t.Helper()
		c, err := net.Dial("tcp", f.r.ListenerAddrs()[ListenerMQTT])
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	readyMetric := func(v string) bool {
		_, body := readyzBody(t, metrics)
		return strings.Contains(body, "\nbollard_ready "+v+"\n")
	}

	if code, body := readyzBody(t, readyz); code != 200 || !f.r.Ready() || !readyMetric("1") {
		t.Fatalf("serving: /readyz %d %q, Ready %v", code, body, f.r.Ready())
	}
	dial()
	eventually(t, 5*time.Second, "the connection served", func() bool { return eng.served.Load() == 1 })

	role.set(false, "member-2.example:1883")
	if code, body := readyzBody(t, readyz); code != 503 || body != "not ready: not serving clients" || f.r.Ready() || !readyMetric("0") {
		t.Fatalf("not serving: /readyz %d %q, Ready %v", code, body, f.r.Ready())
	}
	dial()
	eventually(t, 5*time.Second, "the connection refused", func() bool { return len(eng.refusedRefs()) == 1 })
	if refs := eng.refusedRefs(); refs[0] != "member-2.example:1883" || eng.served.Load() != 1 {
		t.Fatalf("refused with %q, served %d", refs, eng.served.Load())
	}

	role.set(true, "")
	dial()
	eventually(t, 5*time.Second, "the connection served again", func() bool { return eng.served.Load() == 2 })
	if code, _ := readyzBody(t, readyz); code != 200 || !slices.Equal(eng.refusedRefs(), []string{"member-2.example:1883"}) {
		t.Fatalf("serving again: /readyz %d, refused %q", code, eng.refusedRefs())
	}
}

// TestRunnerRoleRefusesThroughEngine runs the real engine: a client that
// reaches a member that does not serve gets CONNACK 0x9C Use another
// server with the role's server reference.
func TestRunnerRoleRefusesThroughEngine(t *testing.T) {
	cfg := loopbackConfig()
	cfg.Durability.Mode, cfg.DataDir = config.DurabilityNone, ""
	e := newEngine(t, cfg)
	role := &switchRole{ref: "member-2.example:1883"}
	f := startRunner(t, cfg, e, withRole(role))
	<-f.r.ReadyC()
	c, err := net.Dial("tcp", f.r.ListenerAddrs()[ListenerMQTT])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ack, ok := mqttConnect(t, c, "moved").(*packet.Connack)
	if !ok || ack.ReasonCode != packet.UseAnotherServer || ack.Properties.ServerReference == nil ||
		*ack.Properties.ServerReference != "member-2.example:1883" {
		t.Fatalf("CONNACK = %+v, want 0x9C with the role's server reference", ack)
	}
}

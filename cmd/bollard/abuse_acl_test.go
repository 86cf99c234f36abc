package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// aclRSSBound is the most resident memory the broker may use during the
// bad-ACL reload attack: it starts at ~20 MB and measured 25 MB at most here
// (49 and 62 MB in a -race build, which gets twice the bound).
func aclRSSBound() int64 {
	if raceBuild {
		return 128 << 20
	}
	return 64 << 20
}

// aclBase is the config of the attack: anonymous clients (loopback), an
// ACL that allows honest/# and spy/# and denies honest/secret.
const aclBase = `listeners:
  mqtt:
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
durability:
  mode: sync
auth:
  allowAnonymous: true
  acl:
  - {user: "", topic: "honest/#", access: readwrite}
  - {user: "", topic: "spy/#", access: readwrite}
  - {user: "", topic: "honest/secret", access: deny}
`

// badACLs are configuration versions the broker must refuse whole. Each
// also opens "#" to everyone, which must never take effect.
var badACLs = []string{
	`{user: "$anonymous", topic: "x", access: readwrite}`,
	`{user: "", topic: "a/#/b", access: readwrite}`,
	`{user: "", topic: "a/b+", access: readwrite}`,
	`{user: "", topic: "home/%u/#", access: readwrite}`,
	`{user: "", topic: "x", access: write}`,
	`{user: "", topic: "", access: deny}`,
	`{user: "", topic: "` + strings.Repeat("deep/", 14000) + `#", access: readwrite}`,
	`{user: "a\nb", topic: "x", access: readwrite}`,
}

// TestAbuseBadACLHotReload hot-reloads many configurations with bad ACLs
// into the real binary while an honest client publishes and consumes QoS
// 1: every one is refused (/v1/status and /metrics say which generation and
// why), the old ACL stays in force, the broker keeps serving, nothing
// acknowledged is lost, and RSS stays under aclRSSBound(). A good version
// afterwards is applied.
func TestAbuseBadACLHotReload(t *testing.T) {
	skipAbuseIfShort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bollard.yaml")
	write := func(gen int, extraRule string) {
		t.Helper()
		content := fmt.Sprintf("configGeneration: %d\ndataDir: %s\n%s", gen, filepath.Join(dir, "data"), aclBase)
		if extraRule != "" {
			content += "  - {user: \"\", topic: \"#\", access: readwrite}\n  - " + extraRule + "\n"
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(1, "")
	b := startBollard(t, "--config", path)
	rssStart := aclVmRSS(t, b.cmd.Process.Pid)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got := newReceived()
	sub, _, err := mqtttest.Dial(ctx, b.mqtt, "honest-sub", true, 0, got.add)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(&paho.Disconnect{}) //nolint:errcheck // cleanup
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "honest/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := &publisher{topic: "honest/t", qos: 1, max: 1 << 30}
	pctx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); pub.run(pctx, b.mqtt, "honest-pub") }()

	rounds := 0
	rssMax := rssStart
	for round := range 20 {
		for i, rule := range badACLs {
			gen := 2 + round*len(badACLs) + i
			write(gen, rule)
			if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 15*time.Second, fmt.Sprintf("generation %d refused", gen), func() bool {
				return aclStatus(t, b).RefusedConfigGeneration == int64(gen)
			})
			st := aclStatus(t, b)
			if st.ConfigGeneration != 1 || st.RefusedConfigError == "" || !strings.Contains(st.RefusedConfigError, "auth.acl[4]") {
				t.Fatalf("generation %d: status %+v", gen, st)
			}
			checkOldACL(ctx, t, b)
			rounds++
			rssMax = max(rssMax, aclVmRSS(t, b.cmd.Process.Pid))
		}
	}
	last := 1 + rounds
	if _, body := b.get("/metrics"); metricValue(body, "bollard_config_refused_generation") != float64(last) ||
		metricValue(body, "bollard_config_generation") != 1 {
		t.Errorf("/metrics does not report the refusal of generation %d", last)
	}
	if pub.ackedCount() == 0 {
		t.Fatal("the honest publisher made no progress during the attack")
	}

	// A good version is applied and clears the refusal.
	write(last+1, `{user: "", topic: "open/#", access: readwrite}`)
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "good generation applied", func() bool {
		st := aclStatus(t, b)
		return st.ConfigGeneration == int64(last+1) && st.RefusedConfigGeneration == 0
	})

	stopPub()
	<-pubDone
	acked := pub.ackedCount()
	waitUntil(t, 30*time.Second, "every acknowledged message delivered", func() bool {
		return got.covers(map[string]int{"honest/t": acked})
	})
	rssMax = max(rssMax, aclVmRSS(t, b.cmd.Process.Pid))
	t.Logf("bad ACL reloads refused: %d; honest QoS 1 messages acknowledged and delivered: %d; RSS start %.1f MB, max %.1f MB (bound %d MB)",
		rounds, acked, float64(rssStart)/(1<<20), float64(rssMax)/(1<<20), aclRSSBound()>>20)
	if rssMax > aclRSSBound() {
		t.Errorf("RSS %d bytes over the bound %d", rssMax, aclRSSBound())
	}
	if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

// aclStatusBody is the part of /v1/status the test reads.
type aclStatusBody struct {
	ConfigGeneration        int64  `json:"configGeneration"`
	RefusedConfigGeneration int64  `json:"refusedConfigGeneration"`
	RefusedConfigError      string `json:"refusedConfigError"`
}

func aclStatus(t *testing.T, b *broker) aclStatusBody {
	t.Helper()
	var st aclStatusBody
	code, body := b.get("/v1/status")
	if code != 200 {
		t.Fatalf("/v1/status = %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/v1/status: %v %s", err, body)
	}
	return st
}

// checkOldACL proves the first ACL is still in force: a publish outside
// it is refused (the refused versions allowed "#"), the denied topic
// cannot be subscribed, a wildcard over it can.
func checkOldACL(ctx context.Context, t *testing.T, b *broker) {
	t.Helper()
	c, _, err := mqtttest.Dial(ctx, b.mqtt, "spy", true, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{}) //nolint:errcheck // cleanup
	// paho reports a refusal both as the response and as an error.
	resp, err := c.Publish(ctx, &paho.Publish{Topic: "forbidden/x", QoS: 1, Payload: []byte("x")})
	if resp == nil || resp.ReasonCode != 0x87 {
		t.Fatalf("publish outside the old ACL: %+v %v, want 0x87", resp, err)
	}
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "honest/secret", QoS: 1}, {Topic: "honest/#", QoS: 1}}})
	if sa == nil || len(sa.Reasons) != 2 || sa.Reasons[0] != 0x87 || sa.Reasons[1] != 1 {
		t.Fatalf("SUBACK %+v %v, want [0x87 1]", sa, err)
	}
}

// aclVmRSS reads the resident set size of pid from /proc.
func aclVmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

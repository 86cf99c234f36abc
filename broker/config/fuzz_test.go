package config

import (
	"bytes"
	"testing"
)

// FuzzParse feeds Parse hostile files (a ConfigMap anyone with edit
// rights on it can write). Parse must return a config or an error, never
// panic; and a config it accepts must survive what the operator and the
// reload path do with it: Marshal must render it, the rendering must
// parse back to the same config (the operator writes what the broker
// loads), and the per-policy and access views must be computable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"queues:\n  maxQueuedMessages: 5\n  overflowPolicy: RejectPublish\n",
		"sessions:\n  maxSessionExpiry: 48h\n  defaultSessionExpiry: 3600\ndurability:\n  mode: interval\n  interval: 10ms\n",
		"auth:\n  allowAnonymous: true\n  acl:\n    - user: alice\n      topic: sensors/%u/#\n      access: readwrite\n",
		`queues:
  maxQueuedMessages: 10000
  maxQueuedBytes: 16Mi
  overflowPolicy: DropOldest
  policies:
    - name: sensors
      clientID: "sensor-*"
      maxQueuedMessages: 500
      maxQueuedBytes: 256Ki
      overflowPolicy: DropOldest
      storeBudgetPercent: 20
    - name: actuators
      principal: "actuator-*"
      maxQueuedMessages: 50000
      maxQueuedBytes: 64Mi
      overflowPolicy: RejectPublish
      maxSessionExpiry: 168h
    - name: firmware
      topicFilter: "firmware/#"
      maxQueuedMessages: 20
      maxQueuedBytes: 512Mi
      overflowPolicy: DropNewest
      storeBudgetPercent: 50
`,
		"cluster:\n  memberID: a\n  bind: 127.0.0.1:7000\n  members:\n    - id: a\n      raftAddress: 127.0.0.1:7000\n    - id: b\n      raftAddress: 127.0.0.1:7001\n    - id: c\n      raftAddress: 127.0.0.1:7002\n  secretFile: /s\n",
		"a: &a [*a, *a]\n",
		"configGeneration: 9\nlogLevel: debug\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		PeekGeneration(b)
		c, err := Parse(b)
		if err != nil {
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal of an accepted config: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("the rendering of an accepted config is refused: %v\n%s", err, out)
		}
		if d := Diff(c, back); d != nil {
			t.Fatalf("round trip changed %v\n%s", d, out)
		}
		if again, _ := Marshal(back); !bytes.Equal(again, out) {
			t.Fatalf("rendering is not stable:\n%s\n---\n%s", out, again)
		}
		if RestartHash(c) != RestartHash(c.Clone()) {
			t.Fatal("a clone restarts differently")
		}
		for i := range c.Queues.Policies {
			c.Effective(i)
		}
		c.Effective(-1)
		c.Auth.Rules()
	})
}

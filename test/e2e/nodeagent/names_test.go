package nodeagent

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParsePodName(t *testing.T) {
	type want struct {
		pod, svc, ns string
		ok           bool
	}
	tests := map[string]want{
		"b-0.b-headless":                          {"b-0", "b-headless", "own", true},
		"b-0.b-headless.other":                    {"b-0", "b-headless", "other", true},
		"b-0.b-headless.other.svc":                {"b-0", "b-headless", "other", true},
		"b-0.b-headless.other.svc.cluster.local":  {"b-0", "b-headless", "other", true},
		"b-0.b-headless.other.svc.cluster.local.": {"b-0", "b-headless", "other", true},
		"b-0":                                  {},
		"b-0.b-headless.other.pod":             {},
		"b-0.b-headless.other.svc.example.com": {},
		"B-0.b-headless":                       {},
		"b_0.b-headless":                       {},
		"127.0.0.1":                            {},
		"a.b.c.d.e.f.g":                        {},
		"":                                     {},
	}
	for in, w := range tests {
		pod, svc, ns, ok := parsePodName(in, "own")
		if (want{pod, svc, ns, ok}) != w {
			t.Errorf("parsePodName(%q) = %q %q %q %v, want %+v", in, pod, svc, ns, ok, w)
		}
	}
}

// testDNS knows the headless Service b-headless in namespace ns, whose
// pods b-0..b-2 have container port 7946 at local port 2200x.
func testDNS() *PodDNS {
	return &PodDNS{
		Namespace: "ns",
		Headless: func(ns, svc, pod string) bool {
			return ns == "ns" && svc == "b-headless" && strings.HasPrefix(pod, "b-")
		},
		Port: func(ns, pod string, port int32) (int, error) {
			if port != 7946 {
				return 0, errors.New("no such port")
			}
			return 22000 + int(pod[len(pod)-1]-'0'), nil
		},
	}
}

func TestRewriterDialAddresses(t *testing.T) {
	r := testRewriter().WithPodDNS(testDNS())
	in := `cluster:
  memberID: b-1
  bind: 0.0.0.0:7946
  members:
    - id: b-0
      raftAddress: b-0.b-headless.ns.svc.cluster.local:7946
      clientAddress: b-0.b-headless.ns.svc.cluster.local:1883
    - id: b-1
      raftAddress: b-1.b-headless:7946
    - id: b-2
      raftAddress: b-2.b-headless.ns.svc:7946
    - id: ext
      raftAddress: broker.example.com:7946
`
	var got struct {
		Cluster struct {
			Members []struct {
				ID            string `yaml:"id"`
				RaftAddress   string `yaml:"raftAddress"`
				ClientAddress string `yaml:"clientAddress"`
			} `yaml:"members"`
			DialAddresses map[string]string `yaml:"dialAddresses"`
		} `yaml:"cluster"`
	}
	out := mustYAML(t, r, in)
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"b-0": "127.0.0.1:22000", "b-1": "127.0.0.1:22001", "b-2": "127.0.0.1:22002"}
	if len(got.Cluster.DialAddresses) != len(want) {
		t.Fatalf("dialAddresses %v, want %v\n%s", got.Cluster.DialAddresses, want, out)
	}
	for id, a := range want {
		if got.Cluster.DialAddresses[id] != a {
			t.Errorf("dialAddresses[%s] = %q, want %q", id, got.Cluster.DialAddresses[id], a)
		}
	}
	// The Raft configuration keeps the names a real cluster has.
	if m := got.Cluster.Members[0]; m.RaftAddress != "b-0.b-headless.ns.svc.cluster.local:7946" ||
		m.ClientAddress != "b-0.b-headless.ns.svc.cluster.local:1883" {
		t.Errorf("member b-0 rewritten: %+v", m)
	}
	if again := mustYAML(t, r, string(out)); string(again) != string(out) {
		t.Errorf("rewriting the result again changed it:\n%s\n%s", out, again)
	}
}

// An existing dialAddresses entry that names a pod is resolved in place;
// others are kept.
func TestRewriterDialAddressesExisting(t *testing.T) {
	r := testRewriter().WithPodDNS(testDNS())
	in := `cluster:
  members:
    - id: b-0
      raftAddress: b-0.b-headless:7946
    - id: b-1
      raftAddress: b-1.b-headless:7946
  dialAddresses:
    b-0: b-2.b-headless:7946
    b-1: 127.0.0.1:5555
`
	out := string(mustYAML(t, r, in))
	for _, want := range []string{"b-0: 127.0.0.1:22002", "b-1: 127.0.0.1:5555"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

func TestRewriterDialAddressesLeavesOthers(t *testing.T) {
	r := testRewriter().WithPodDNS(testDNS())
	for name, in := range map[string]string{
		"no cluster":           "logLevel: info\n",
		"members not a list":   "cluster:\n  members: b-0\n",
		"dial not a mapping":   "cluster:\n  members:\n    - id: b-0\n      raftAddress: b-0.b-headless:7946\n  dialAddresses: [x]\n",
		"not headless":         "cluster:\n  members:\n    - id: x-0\n      raftAddress: x-0.other:7946\n",
		"no port":              "cluster:\n  members:\n    - id: b-0\n      raftAddress: b-0.b-headless\n",
		"member without an id": "cluster:\n  members:\n    - raftAddress: b-0.b-headless:7946\n",
	} {
		if out := mustYAML(t, r, in); string(out) != in {
			t.Errorf("%s: changed:\n%s", name, out)
		}
	}
	in := "cluster:\n  members:\n    - id: b-0\n      raftAddress: b-0.b-headless:9999\n"
	if _, err := r.YAML([]byte(in)); err == nil {
		t.Error("a port that cannot be allocated is not an error")
	}
}

func TestClusterArgs(t *testing.T) {
	d := testDNS()
	members := "--cluster-members=b-0=b-0.b-headless.ns.svc:7946=b-0.b-headless.ns.svc:1883,b-1=b-1.b-headless.ns.svc:7946,ext=x.example.com:7946"
	tests := map[string]struct{ in, want []string }{
		"appended": {
			[]string{"--config=/c.yaml", members, "--cluster-bind=127.0.0.1:20005"},
			[]string{"--config=/c.yaml", members, "--cluster-bind=127.0.0.1:20005",
				"--cluster-dial-addresses=b-0=127.0.0.1:22000,b-1=127.0.0.1:22001"},
		},
		"existing entries resolved in place, others kept": {
			[]string{members, "-cluster-dial-addresses=ext=127.0.0.1:9,b-1=b-2.b-headless:7946"},
			[]string{members, "--cluster-dial-addresses=ext=127.0.0.1:9,b-1=127.0.0.1:22002,b-0=127.0.0.1:22000"},
		},
		"separate value": {
			[]string{"--cluster-members", "b-0=b-0.b-headless:7946", "--cluster-dial-addresses", "b-0=b-0.b-headless:7946"},
			[]string{"--cluster-members", "b-0=b-0.b-headless:7946", "--cluster-dial-addresses", "b-0=127.0.0.1:22000"},
		},
		"nothing to resolve": {
			[]string{"--cluster-members=ext=x.example.com:7946"},
			[]string{"--cluster-members=ext=x.example.com:7946"},
		},
		"no members flag": {
			[]string{"--cluster-dial-addresses=b-0=b-0.b-headless:7946"},
			[]string{"--cluster-dial-addresses=b-0=b-0.b-headless:7946"},
		},
		"after --": {
			[]string{"--", members},
			[]string{"--", members},
		},
		"malformed members left to the broker": {
			[]string{"--cluster-members=b-0,=b-1.b-headless:7946"},
			[]string{"--cluster-members=b-0,=b-1.b-headless:7946"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := d.ClusterArgs(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			again, err := d.ClusterArgs(got)
			if err != nil || strings.Join(again, " ") != strings.Join(got, " ") {
				t.Fatalf("not stable: %q (%v)", again, err)
			}
		})
	}
	if _, err := d.ClusterArgs([]string{"--cluster-members=b-0=b-0.b-headless:9999"}); err == nil {
		t.Error("a port that cannot be allocated is not an error")
	}
}

// With Siblings, a member listed alone is given dial addresses for its
// StatefulSet siblings too (members added later through it), up to the
// broker's bound of 7 entries.
func TestClusterArgsSiblings(t *testing.T) {
	d := testDNS()
	d.Siblings = true
	got, err := d.ClusterArgs([]string{"--cluster-members=b-0=b-0.b-headless.ns.svc:7946=b-0.b-headless.ns.svc:1883"})
	if err != nil {
		t.Fatal(err)
	}
	want := "--cluster-dial-addresses=b-0=127.0.0.1:22000,b-1=127.0.0.1:22001,b-2=127.0.0.1:22002,b-3=127.0.0.1:22003," +
		"b-4=127.0.0.1:22004,b-5=127.0.0.1:22005,b-6=127.0.0.1:22006"
	if len(got) != 2 || got[1] != want {
		t.Fatalf("args %q, want %q", got, want)
	}
	got, err = d.ClusterArgs([]string{"--cluster-members=ext=x.example.com:7946"})
	if err != nil || len(got) != 1 {
		t.Fatalf("a member that is no pod got siblings: %q %v", got, err)
	}
	if s := siblings("b-x.b-headless:7946"); s != nil {
		t.Fatalf("siblings of a name without an ordinal: %q", s)
	}
}

package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/access"
)

// quickStart is what a quick start's shell commands do, as far as the
// first broker's clients are concerned.
type quickStart struct {
	users      map[string]string // htpasswd -nbB USER PASSWORD
	secret     string            // kubectl create secret generic NAME
	secretKey  string            // --from-file=KEY
	sample     string            // kubectl apply -f PATH
	namespaces map[string]bool   // -n NS of the commands that create the Secret and the broker and forward its port
	broker     string            // kubectl wait mqttbroker/NAME, port-forward service/NAME
	forward    string            // port-forward's local port
	remote     string            // port-forward's port on the Service
	clients    []mqttClient
}

type mqttClient struct {
	line                                string
	publish                             bool
	port, user, password, topic, client string
}

var (
	htpasswdRe = regexp.MustCompile(`htpasswd -nbB\s+(\S+)\s+(\S+)`)
	secretRe   = regexp.MustCompile(`create secret generic (\S+) --from-file=(\S+)`)
	applyRe    = regexp.MustCompile(`kubectl .*apply -f (\S+)`)
	nsRe       = regexp.MustCompile(`kubectl -n (\S+) `)
	waitRe     = regexp.MustCompile(`wait mqttbroker/(\S+)`)
	forwardRe  = regexp.MustCompile(`port-forward service/(\S+) (\d+):(\d+)`)
)

// parseQuickStart reads the commands of shell blocks.
func parseQuickStart(t *testing.T, blocks []string) quickStart {
	t.Helper()
	q := quickStart{users: map[string]string{}, namespaces: map[string]bool{}}
	for _, block := range blocks {
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(line)
			if m := htpasswdRe.FindStringSubmatch(line); m != nil {
				q.users[m[1]] = m[2]
			}
			ns := ""
			if m := nsRe.FindStringSubmatch(line); m != nil {
				ns = m[1]
			}
			if m := secretRe.FindStringSubmatch(line); m != nil {
				q.secret, q.secretKey = m[1], filepath.Base(m[2])
				q.namespaces[ns] = true
			}
			if m := applyRe.FindStringSubmatch(line); m != nil {
				q.sample = m[1]
				q.namespaces[ns] = true
			}
			if m := waitRe.FindStringSubmatch(line); m != nil {
				q.broker = m[1]
			}
			if m := forwardRe.FindStringSubmatch(line); m != nil {
				if q.broker != "" && m[1] != q.broker {
					t.Errorf("port-forward to service/%s, but the quick start waits for mqttbroker/%s", m[1], q.broker)
				}
				q.forward, q.remote = m[2], m[3]
				q.namespaces[ns] = true
			}
			if strings.HasPrefix(line, "mosquitto_pub ") || strings.HasPrefix(line, "mosquitto_sub ") {
				q.clients = append(q.clients, parseClient(line))
			}
		}
	}
	return q
}

func parseClient(line string) mqttClient {
	c := mqttClient{line: line, publish: strings.HasPrefix(line, "mosquitto_pub ")}
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		v := strings.Trim(f[i+1], `'"`)
		switch f[i] {
		case "-p":
			c.port = v
		case "-u":
			c.user = v
		case "-P":
			c.password = v
		case "-t":
			c.topic = v
		case "-i":
			c.client = v
		}
	}
	return c
}

// shellBlocks returns the ```sh blocks of a Markdown file between the
// heading start and the next heading of the same or a higher level
// (lines in code blocks are not headings).
func shellBlocks(t *testing.T, path, start string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	level := strings.Index(start, " ")
	var blocks []string
	var cur *strings.Builder
	in, fence := false, false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			if !fence && in && line == "```sh" {
				cur = &strings.Builder{}
			} else if fence && cur != nil {
				blocks = append(blocks, cur.String())
				cur = nil
			}
			fence = !fence
		case fence:
			if cur != nil {
				cur.WriteString(line + "\n")
			}
		case line == start:
			in = true
		case in && strings.HasPrefix(line, "#"):
			if n := len(line) - len(strings.TrimLeft(line, "#")); n <= level && strings.HasPrefix(line[n:], " ") {
				in = false
			}
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("%s, %q: no sh block", path, start)
	}
	return blocks
}

// checkQuickStart: the first broker a quick start creates admits its
// first clients. The sample it applies names the Secret the quick start
// creates, under the key it creates; every client authenticates (anonymous
// access is off) as a user the quick start created, with that user's
// password, through the port it forwards; and the broker's own ACL
// (broker/access, compiled from the sample's rules) lets each publish and
// subscribe what it does.
func checkQuickStart(t *testing.T, q quickStart) {
	t.Helper()
	root := repoRoot(t)
	if q.sample == "" || len(q.clients) == 0 {
		t.Fatalf("found no `kubectl apply -f` (%q) or no mosquitto client (%d)", q.sample, len(q.clients))
	}
	b := &v1alpha1.MQTTBroker{}
	data, err := os.ReadFile(filepath.Join(root, q.sample))
	if err != nil {
		t.Fatalf("the quick start applies %s: %v", q.sample, err)
	}
	if err := yaml.UnmarshalStrict(data, b); err != nil {
		t.Fatalf("%s: %v", q.sample, err)
	}
	if len(q.namespaces) != 1 {
		t.Errorf("the Secret, the broker and the port-forward are in namespaces %v: they must share one", q.namespaces)
	}
	if q.broker != b.Name {
		t.Errorf("the quick start waits for mqttbroker/%s, the sample is named %s", q.broker, b.Name)
	}
	a := b.Spec.Auth
	if !a.AllowAnonymous {
		ref := a.UsersSecretRef
		switch {
		case ref == nil:
			t.Fatalf("%s: anonymous clients are refused and no users Secret is named: no client can connect", q.sample)
		case ref.Name != q.secret:
			t.Errorf("%s names the users Secret %q, the quick start creates %q", q.sample, ref.Name, q.secret)
		case ref.Key != "" && ref.Key != q.secretKey || ref.Key == "" && q.secretKey != "users":
			t.Errorf("%s reads key %q of the Secret (default users), the quick start creates key %q", q.sample, ref.Key, q.secretKey)
		}
	}
	var file strings.Builder
	hashes := map[string]string{}
	for u, p := range q.users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		file.WriteString(u + ":" + string(h) + "\n")
		hashes[u] = string(h)
	}
	parsed, bad := access.ParseUsersFile([]byte(file.String()))
	if len(bad) > 0 {
		t.Fatalf("the broker refuses the quick start's users file: %v", access.UsersFileError(bad))
	}
	rules := make([]access.Rule, len(a.ACL))
	for i, r := range a.ACL {
		rules[i] = access.Rule{User: r.User, Topic: r.Topic, Kind: access.Kind(r.Access)}
	}
	acl, err := access.NewACL(rules)
	if err != nil {
		t.Fatalf("%s: the broker refuses the ACL: %v", q.sample, err)
	}
	port := "1883" // the CRD's default
	if p := b.Spec.Listeners.MQTT.Port; p != 0 {
		port = strconv.Itoa(int(p))
	}
	if q.remote != "" && q.remote != port {
		t.Errorf("the quick start forwards to port %s of the Service, the broker listens on %s", q.remote, port)
	}
	for _, c := range q.clients {
		if q.forward != "" && c.port != q.forward {
			t.Errorf("%q: port %s, the quick start forwards %s", c.line, c.port, q.forward)
		}
		if !a.AllowAnonymous {
			h, ok := parsed[c.user]
			if c.user == "" || !ok || bcrypt.CompareHashAndPassword([]byte(h), []byte(c.password)) != nil {
				t.Errorf("%q: user %q with password %q is not a user of the quick start's Secret (users %v)", c.line, c.user, c.password, q.users)
			}
		}
		allowed := acl.CanSubscribe(c.user, c.client, c.topic)
		if c.publish {
			allowed = acl.CanPublish(c.user, c.client, c.topic)
		}
		if !allowed {
			t.Errorf("%q: the sample's ACL refuses topic %q to user %q", c.line, c.topic, c.user)
		}
	}
}

// TestQuickStartsAdmitTheFirstClients checks the Kubernetes quick starts
// of README.md and docs/quickstart.md (see checkQuickStart).
func TestQuickStartsAdmitTheFirstClients(t *testing.T) {
	root := repoRoot(t)
	t.Run("README", func(t *testing.T) {
		checkQuickStart(t, parseQuickStart(t, shellBlocks(t, filepath.Join(root, "README.md"), "### On a Kubernetes cluster")))
	})
	t.Run("docs/quickstart.md", func(t *testing.T) {
		path := filepath.Join(root, "docs", "quickstart.md")
		q := parseQuickStart(t, shellBlocks(t, path, "## Your first broker"))
		checkQuickStart(t, q)
		// The YAML the page shows is the sample it applies.
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile("(?s)## Your first broker.*?```yaml\n(.*?)```").FindSubmatch(b)
		if m == nil {
			t.Fatal("docs/quickstart.md shows no yaml block for the first broker")
		}
		sample, err := os.ReadFile(filepath.Join(root, q.sample))
		if err != nil {
			t.Fatal(err)
		}
		var shown, applied v1alpha1.MQTTBroker
		if err := yaml.UnmarshalStrict(m[1], &shown); err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(sample, &applied); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(shown, applied) {
			t.Errorf("the broker docs/quickstart.md shows differs from %s, which it applies", q.sample)
		}
	})
}

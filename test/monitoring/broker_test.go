package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/host"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/mqtttest"
	"github.com/bollard-io/bollard/test/poll"
	"github.com/bollard-io/bollard/test/testenv"
)

const token = "monitoring-test-token-0123456789abcdef"

// broker is a running broker: sync durability on a Pebble store (so the
// fsync histogram exists), admin.metricsTopQueues 5, and an offline
// session with queued messages (so the top queue series exist).
type broker struct {
	admin string
	mqtt  string
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listeners.MQTT.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Admin.TokenFile = tokenFile
	cfg.Admin.MetricsTopQueues = 5
	cfg.Queues.MaxQueuedMessages = 10
	cfg.Queues.OverflowPolicy = config.OverflowDropNewest
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := pebblestore.Open(cfg.DataDir, pebblestore.Options{Durability: pebblestore.Sync, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.New(cfg, st, engine.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	r := host.NewRunner(srv, host.RunOptions{Config: cfg, Logger: log, Version: "v0.0.0-monitoring", Store: st})
	stopped := run(t, r)
	select {
	case <-r.ReadyC():
	case <-stopped:
		t.Fatal("broker stopped before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("broker not ready")
	}
	b := &broker{admin: r.AdminAddr(), mqtt: r.ListenerAddrs()["mqtt"]}
	b.queue(t, "deep-queue", 12) // 2 over the limit: queue_full drops
	return b
}

// run runs r until the test ends, when an error of its Run fails the
// test, and returns a channel closed when Run returns.
func run(t *testing.T, r *host.Runner) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var err error
	go func() {
		err = r.Run(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
		if err != nil {
			t.Error(err)
		}
	})
	return stopped
}

// queue leaves an offline session subscribed to its own topic with n
// QoS 1 messages published to it.
func (b *broker) queue(t *testing.T, clientID string, n int) {
	t.Helper()
	ctx := context.Background()
	if err := mqtttest.SubscribeOffline(ctx, b.mqtt, clientID, "q/"+clientID, 1, 3600); err != nil {
		t.Fatal(err)
	}
	pub, _, err := mqtttest.Dial(ctx, b.mqtt, "pub-"+clientID, true, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Disconnect(&paho.Disconnect{}) }()
	for i := range n {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "q/" + clientID, QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *broker) get(t *testing.T, path string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+b.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(body)
}

// exported scrapes /metrics and returns the names of the series it holds,
// histograms' _bucket, _sum and _count included, once the census counts
// the queued session.
func (b *broker) exported(t *testing.T) map[string]bool {
	t.Helper()
	var body string
	err := poll.Until(context.Background(), 10*time.Second, 100*time.Millisecond, func(context.Context) error {
		body = b.get(t, "/metrics")
		if !strings.Contains(body, `bollard_queue_top_messages{client_id="deep-queue"} 10`) {
			return fmt.Errorf("the deep queue is not exported yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seriesNames(body)
}

// seriesNames returns the names of the series a scrape declares (its TYPE
// lines), histograms' _bucket, _sum and _count included.
func seriesNames(body string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
		case "summary":
			names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
		}
	}
	return names
}

// dashboard is config/grafana/bollard-dashboard.json.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "grafana", "bollard-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("config/grafana/bollard-dashboard.json is not valid JSON: %v", err)
	}
	return d
}

// panelQueries lists every panel's queries by title, rows' panels
// included; a panel with no query is an error.
func panelQueries(t *testing.T, ps []panel, out map[string][]string) {
	t.Helper()
	for _, p := range ps {
		if p.Type == "row" {
			panelQueries(t, p.Panels, out)
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
}

// ruleExprs reads config/prometheus/rules.yaml.
func ruleExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []resources.RuleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// prometheusSeries are the series Prometheus makes itself for every
// target: rules may read them besides what the broker exports.
var prometheusSeries = map[string]bool{"up": true}

// TestDashboardAndRulesNameExportedMetrics: every query of the dashboard
// (panels and variables) and every alert rule names only metrics a running
// broker, or a running cluster member, exports.
func TestDashboardAndRulesNameExportedMetrics(t *testing.T) {
	exported := allExported(t)
	for _, want := range []string{"bollard_queue_top_messages", "bollard_store_fsync_duration_seconds_bucket", "bollard_store_write_stalls_total", "bollard_store_write_stall_seconds_total", "bollard_store_l0_files", "bollard_store_l0_stop_writes_sublevels", "bollard_store_compaction_debt_bytes", "bollard_queue_fullest_ratio", "go_goroutines"} {
		if !exported[want] {
			t.Fatalf("the broker does not export %s: the scrape is not what this test expects", want)
		}
	}
	check := func(where, expr string, names []string, err error, extra map[string]bool) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, n := range names {
			if !exported[n] && !extra[n] {
				t.Errorf("%s: %s is not exported by the broker (in %q)", where, n, expr)
			}
		}
	}

	d := readDashboard(t)
	queries := map[string][]string{}
	panelQueries(t, d.Panels, queries)
	if len(queries) < 10 {
		t.Errorf("the dashboard has %d panels with queries", len(queries))
	}
	for title, exprs := range queries {
		for _, e := range exprs {
			names, err := metricNames(e)
			check("panel "+title, e, names, err, nil)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		names, err := templateQueryNames(s)
		check("variable "+v.Name, s, names, err, nil)
	}

	rules := ruleExprs(t)
	if len(rules) != len(resources.AlertRules("")[0].Rules) {
		t.Errorf("config/prometheus/rules.yaml has %d alerts (run `make monitoring`)", len(rules))
	}
	for alert, e := range rules {
		names, err := metricNames(e)
		check("alert "+alert, e, names, err, prometheusSeries)
	}
}

// TestOperatorReadsTheBrokersStatus: the operator's view of /v1/status
// (controllers.BrokerStatus) decodes what the broker writes, every figure
// of status.stats present.
func TestOperatorReadsTheBrokersStatus(t *testing.T) {
	b := startBroker(t)
	var st controllers.BrokerStatus
	err := poll.Until(context.Background(), 10*time.Second, 100*time.Millisecond, func(context.Context) error {
		st = controllers.BrokerStatus{}
		if err := json.Unmarshal([]byte(b.get(t, "/v1/status")), &st); err != nil {
			return err
		}
		if len(st.TopQueues) == 0 {
			return fmt.Errorf("no top queues yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.QueuedBytes == nil || st.FullestQueueRatio == nil || st.RecentDrops == nil || st.Storage == nil {
		t.Fatalf("figures missing from the operator's view: %+v", st)
	}
	q := st.TopQueues[0]
	if q.ClientID != "deep-queue" || q.Messages != 10 || q.Bytes <= 0 || *st.FullestQueueRatio != 1 {
		t.Errorf("top queue %+v, fullest %v", q, *st.FullestQueueRatio)
	}
	if st.RecentDrops.WindowSeconds != 300 || st.RecentDrops.ByReason["queue_full"] != 2 {
		t.Errorf("recent drops %+v", *st.RecentDrops)
	}
	if st.SessionsOffline != 1 || st.QueuedMessages != 10 || st.Storage.Used <= 0 || st.Storage.VolumeFree <= 0 {
		t.Errorf("status %+v, storage %+v", st, *st.Storage)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

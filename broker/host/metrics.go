package host

import (
	"net/http"
	"runtime"
	"sort"
	"strconv"

	"github.com/bollard-io/bollard/broker/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// knownDropReasons are exported at zero before the first drop, so that
// rate() and alerts work from the start. Reasons the engine adds later
// appear once counted.
var knownDropReasons = []string{
	engine.DropQueueFull, engine.DropQuotaRejected, engine.DropStoreFull, engine.DropExpired, engine.DropSlowConsumer,
	engine.DropTooLarge, engine.DropQoS0Offline, engine.DropSessionExpired, engine.DropNotAuthorized, engine.DropReadDenied,
	engine.DropPolicyStoreFull,
}

// Metric descriptions. Every value is read from the engine's Stats() (and
// the host's state) at scrape time: nothing is double-counted or cached.
var (
	descConnections = prometheus.NewDesc("bollard_connections",
		"Open client connections (after CONNECT).", nil, nil)
	descSessions = prometheus.NewDesc("bollard_sessions",
		"Sessions by state (online: a client is connected).", []string{"state"}, nil)
	descQueuedMessages = prometheus.NewDesc("bollard_queued_messages",
		"Messages queued for sessions, all sessions together.", nil, nil)
	descQueuedBytes = prometheus.NewDesc("bollard_queued_bytes",
		"Bytes of messages queued for sessions, all sessions together.", nil, nil)
	descRetained = prometheus.NewDesc("bollard_retained_messages",
		"Retained messages.", nil, nil)
	descDropped = prometheus.NewDesc("bollard_dropped_messages_total",
		"Messages discarded without delivery, by reason.", []string{"reason"}, nil)
	descMessagesIn = prometheus.NewDesc("bollard_messages_received_total",
		"PUBLISH packets received from clients, by QoS.", []string{"qos"}, nil)
	descMessagesOut = prometheus.NewDesc("bollard_messages_sent_total",
		"PUBLISH packets sent to clients, by QoS.", []string{"qos"}, nil)
	descBytesIn = prometheus.NewDesc("bollard_received_bytes_total",
		"Bytes read from client connections.", nil, nil)
	descBytesOut = prometheus.NewDesc("bollard_sent_bytes_total",
		"Bytes written to client connections.", nil, nil)
	descCommit = prometheus.NewDesc("bollard_store_commit_duration_seconds",
		"Latency of store commits that acknowledge publishes, including the fsync in sync mode.", nil, nil)
	descCommitErrors = prometheus.NewDesc("bollard_store_commit_errors_total",
		"Store commits that failed: a publish, subscription, session or delivery state not stored (an I/O error; on a cluster member, a leader that lost its majority). Logged the first time of each kind, then at most once every 10 s.", nil, nil)
	descFsync = prometheus.NewDesc("bollard_store_fsync_duration_seconds",
		"Latency of each fsync of the store's write-ahead log, timed around the call (group commits share one).", nil, nil)
	descTopMessages = prometheus.NewDesc("bollard_queue_top_messages",
		"Messages queued for each of the admin.metricsTopQueues deepest session queues (0 by default: none), by client_id; a client that leaves them loses its series.",
		[]string{"client_id"}, nil)
	descTopBytes = prometheus.NewDesc("bollard_queue_top_bytes",
		"Bytes queued for each of the admin.metricsTopQueues deepest session queues, by client_id.", []string{"client_id"}, nil)
	descFullest = prometheus.NewDesc("bollard_queue_fullest_ratio",
		"Fill of the fullest session queue: its messages or bytes over its queue limit, whichever is larger (1: at the limit, where the overflow policy acts).",
		nil, nil)
	descGeneration = prometheus.NewDesc("bollard_config_generation",
		"configGeneration of the applied configuration.", nil, nil)
	descPendingRestart = prometheus.NewDesc("bollard_config_pending_restart",
		"1 when the config file changed fields that take effect only after a restart.", nil, nil)
	descReloadFailed = prometheus.NewDesc("bollard_config_last_reload_failed",
		"1 when the last attempt to reload the config file failed (the previous config stays applied).", nil, nil)
	descRefused = prometheus.NewDesc("bollard_config_refused_generation",
		"configGeneration of the newest config file version the broker refused while no later one was applied (0: none); that version is not in force.", nil, nil)
	descReloads = prometheus.NewDesc("bollard_config_reloads_total",
		"Config file versions, by result (applied or rejected).", []string{"result"}, nil)
	descReady = prometheus.NewDesc("bollard_ready",
		"1 when the broker is ready (recovered, accepting, serving clients, not draining).", nil, nil)
	descAdminRefused = prometheus.NewDesc("bollard_admin_requests_refused_total",
		"Requests to the admin API (/v1/*) refused, by reason: missing_token, wrong_token, no_token_configured.", []string{"reason"}, nil)
	descRefusals = prometheus.NewDesc("bollard_limit_refusals_total",
		"Packets, subscriptions, messages and connections refused by a limit, by limit (see docs/security.md).", []string{"limit"}, nil)
	descStorage = prometheus.NewDesc("bollard_store_bytes",
		"The store budget and the disk, by kind: used (what counts against the budget), budget (queues.maxStoreBytes, 0: none), messages (stored and retained messages), disk (the store's files, WAL included), compaction_debt, volume_free, volume_size, reserved (free space a cluster member keeps for its next Raft snapshot).",
		[]string{"kind"}, nil)
	descStoragePressure = prometheus.NewDesc("bollard_store_pressure",
		"1 when the store is at 95% of its budget or more, or its volume's free space below queues.minVolumeFreeBytes (plus, on a cluster member, room for its next Raft snapshot).", nil, nil)
	descWriteStalls = prometheus.NewDesc("bollard_store_write_stalls_total",
		"Times the store stopped every commit (and so every acknowledgement in sync mode) because its memtable flushes or L0 compactions fell behind; absent without a durable store.", nil, nil)
	descWriteStallSeconds = prometheus.NewDesc("bollard_store_write_stall_seconds_total",
		"Time commits spent stopped by write stalls, the running one included.", nil, nil)
	descL0Files = prometheus.NewDesc("bollard_store_l0_files",
		"Files in level 0 of the store's LSM tree; absent when the store cannot be read.", nil, nil)
	descL0Sublevels = prometheus.NewDesc("bollard_store_l0_sublevels",
		"Sublevels the level-0 files make (each is one more place every read looks); every write stops at bollard_store_l0_stop_writes_sublevels.", nil, nil)
	descL0StopWrites = prometheus.NewDesc("bollard_store_l0_stop_writes_sublevels",
		"The level-0 sublevels at which the store stops every write (and so every acknowledgement in sync mode) until its compactions bring them down.", nil, nil)
	descMemtables = prometheus.NewDesc("bollard_store_memtables",
		"Memtables of the store, the one being filled included (more than two: flushes lag behind the writes).", nil, nil)
	descMemtableBytes = prometheus.NewDesc("bollard_store_memtable_bytes",
		"Size of the store's memtables.", nil, nil)
	descCompactionDebt = prometheus.NewDesc("bollard_store_compaction_debt_bytes",
		"The store's estimate of the bytes its compactions must still rewrite to bring the LSM tree back to its shape.", nil, nil)
	descFlushes = prometheus.NewDesc("bollard_store_flushes_total",
		"Memtable flushes finished since the store opened.", nil, nil)
	descCompactions = prometheus.NewDesc("bollard_store_compactions_total",
		"Compactions finished since the store opened.", nil, nil)
	descLSMRunning = prometheus.NewDesc("bollard_store_lsm_jobs_running",
		"Flushes and compactions in progress, by kind.", []string{"kind"}, nil)
	descProcs = prometheus.NewDesc("bollard_procs",
		"Threads that run Go code at once (GOMAXPROCS): 1 while the broker is lightly loaded, all the CPUs it may use once goroutines wait for one (procs: auto; see docs/operations.md).", nil, nil)
	descProcsSwitches = prometheus.NewDesc("bollard_procs_switches_total",
		"Changes of bollard_procs made by procs: auto.", nil, nil)
	descBuildInfo = prometheus.NewDesc("bollard_build_info",
		"Always 1; the version label is the broker's version.", []string{"version"}, nil)
)

// brokerCollector reads the broker's state at scrape time.
type brokerCollector struct{ cfg AdminConfig }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descConnections, descSessions, descQueuedMessages, descQueuedBytes, descRetained,
		descDropped, descMessagesIn, descMessagesOut, descBytesIn, descBytesOut, descCommit, descCommitErrors, descFsync,
		descTopMessages, descTopBytes, descFullest,
		descGeneration, descPendingRestart, descReloadFailed, descRefused, descReloads, descReady, descBuildInfo, descProcs, descProcsSwitches,
		descAdminRefused, descRefusals, descStorage, descStoragePressure, descWriteStalls, descWriteStallSeconds,
		descL0Files, descL0Sublevels, descL0StopWrites, descMemtables, descMemtableBytes, descCompactionDebt, descFlushes, descCompactions, descLSMRunning,
	} {
		ch <- d
	}
	for _, d := range connDescs {
		ch <- d
	}
	for _, d := range policyDescs {
		ch <- d
	}
	if c.cfg.Cluster != nil {
		for _, d := range clusterDescs {
			ch <- d
		}
		if _, ok := c.cfg.Cluster.(HandoverAdmin); ok {
			for _, d := range handoverDescs {
				ch <- d
			}
		}
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	// A cluster member that does not serve holds no sessions in memory
	// (only the leader does): it exports no session, queue or retained
	// figures rather than zeros that are not the cluster's.
	holds := true
	if c.cfg.Cluster != nil {
		cs := c.cfg.Cluster.Status()
		holds = cs.Serving
		collectCluster(cs, ch)
		collectHandover(c.cfg.Cluster, ch)
	}
	st := c.cfg.Backend.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnections, float64(st.Connections))
	if holds {
		gauge(descSessions, float64(st.SessionsOnline), "online")
		gauge(descSessions, float64(st.SessionsOffline), "offline")
		gauge(descQueuedMessages, float64(st.QueuedMessages))
		gauge(descQueuedBytes, float64(st.QueuedBytes))
		gauge(descFullest, st.FullestQueue)
		collectTopQueues(ch, st)
		gauge(descRetained, float64(st.Retained))
	}
	for _, reason := range dropReasons(st.Drops) {
		counter(descDropped, st.Drops[reason], reason)
	}
	for qos := range 3 {
		counter(descMessagesIn, st.MessagesIn[qos], strconv.Itoa(qos))
		counter(descMessagesOut, st.MessagesOut[qos], strconv.Itoa(qos))
	}
	for _, limit := range engine.LimitNames(st.Refusals) {
		counter(descRefusals, st.Refusals[limit], limit)
	}
	sg := st.Storage
	for kind, v := range map[string]int64{"used": sg.Used, "budget": sg.Budget, "messages": sg.MessageBytes,
		"disk": sg.DiskBytes, "compaction_debt": sg.CompactionDebt, "volume_free": sg.VolumeFree, "volume_size": sg.VolumeSize,
		"reserved": sg.Reserved} {
		gauge(descStorage, float64(v), kind)
	}
	gauge(descStoragePressure, boolGauge(sg.Pressure))
	counter(descBytesIn, st.BytesIn)
	counter(descBytesOut, st.BytesOut)
	ch <- prometheus.MustNewConstHistogram(descCommit, st.Commit.Count, st.Commit.Sum, st.Commit.Buckets)
	counter(descCommitErrors, st.StoreCommitErrors)
	if st.Fsync.Buckets != nil {
		ch <- prometheus.MustNewConstHistogram(descFsync, st.Fsync.Count, st.Fsync.Sum, st.Fsync.Buckets)
	}
	if ws := st.WriteStalls; ws != nil {
		counter(descWriteStalls, uint64(ws.Count))
		ch <- prometheus.MustNewConstMetric(descWriteStallSeconds, prometheus.CounterValue, ws.Total.Seconds())
	}
	if l := st.LSM; l != nil {
		gauge(descL0Files, float64(l.L0Files))
		gauge(descL0Sublevels, float64(l.L0Sublevels))
		if l.L0StopWritesSublevels > 0 {
			gauge(descL0StopWrites, float64(l.L0StopWritesSublevels))
		}
		gauge(descMemtables, float64(l.Memtables))
		gauge(descMemtableBytes, float64(l.MemtableBytes))
		gauge(descCompactionDebt, float64(l.CompactionDebtBytes))
		counter(descFlushes, uint64(l.Flushes))
		counter(descCompactions, uint64(l.Compactions))
		gauge(descLSMRunning, float64(l.FlushesRunning), "flush")
		gauge(descLSMRunning, float64(l.CompactionsRunning), "compaction")
	}
	gauge(descGeneration, float64(c.cfg.Backend.ConfigGeneration()))
	c.collectShell(ch, gauge)
	gauge(descBuildInfo, 1, c.cfg.Version)
	for reason, n := range c.cfg.Auth.Refused() {
		counter(descAdminRefused, n, reason)
	}
	collectConn(ch, st)
	collectPolicies(ch, st, holds)
}

// collectTopQueues exports the st.MetricsTopQueues deepest queues. Each
// client ID is one series: a client that is no longer among them is not
// exported, so Prometheus marks its series stale at the next scrape. A
// client ID Prometheus cannot take as a label value is left out rather
// than failing the scrape.
func collectTopQueues(ch chan<- prometheus.Metric, st engine.Stats) {
	for _, q := range st.TopQueues[:min(len(st.TopQueues), max(st.MetricsTopQueues, 0))] {
		m, err := prometheus.NewConstMetric(descTopMessages, prometheus.GaugeValue, float64(q.Messages), q.ClientID)
		if err != nil {
			continue
		}
		ch <- m
		ch <- prometheus.MustNewConstMetric(descTopBytes, prometheus.GaugeValue, float64(q.Bytes), q.ClientID)
	}
}

// collectShell exports the state of the reloader and the lifecycle.
func (c brokerCollector) collectShell(ch chan<- prometheus.Metric, gauge func(*prometheus.Desc, float64, ...string)) {
	var r ReloadStatus
	if c.cfg.Reload != nil {
		r = c.cfg.Reload()
	}
	gauge(descPendingRestart, boolGauge(len(r.PendingRestartFields) > 0))
	gauge(descReloadFailed, boolGauge(r.LastError != ""))
	gauge(descRefused, float64(r.RefusedGeneration))
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(r.Reloads), "applied")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(r.Failures), "rejected")
	gauge(descReady, boolGauge(c.cfg.Ready() && !c.cfg.Draining()))
	gauge(descProcs, float64(runtime.GOMAXPROCS(0)))
	ch <- prometheus.MustNewConstMetric(descProcsSwitches, prometheus.CounterValue, float64(procsState.switches.Load()))
}

// dropReasons lists the known reasons and any other counted one, sorted.
func dropReasons(drops map[string]uint64) []string {
	seen := make(map[string]bool, len(knownDropReasons)+len(drops))
	var out []string
	for _, r := range knownDropReasons {
		seen[r] = true
		out = append(out, r)
	}
	for r := range drops {
		if !seen[r] {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newMetricsHandler serves /metrics from a private registry (no global
// state, so several brokers can run in one test process): the broker's
// collector plus the Go runtime and process collectors (RSS, descriptors).
func newMetricsHandler(c AdminConfig) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		brokerCollector{cfg: c},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slogPromLogger{c.Log},
		MaxRequestsInFlight: 4,
	})
}

// slogPromLogger adapts slog to promhttp's error logger.
type slogPromLogger struct {
	log interface{ Error(string, ...any) }
}

func (l slogPromLogger) Println(v ...any) { l.log.Error("metrics scrape failed", "err", v) }

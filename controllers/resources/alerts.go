package resources

import (
	"fmt"
	"strings"
)

// The alerting rules for Bollard brokers, defined once: the operator puts
// them in each broker's PrometheusRule (limited to that broker's series),
// and hack/genmonitoring writes them, for every broker, into
// config/prometheus (a Prometheus rule file and a PrometheusRule) and the
// Helm chart. docs/operations.md says what to do when each fires; every
// metric they read is one the broker exports (test/monitoring checks it
// against a running broker, and tests each rule with promtool).

// RuleGroup is a Prometheus rule group, in the rule file's layout.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// Rule is one alerting rule.
type Rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// AlertGroupName names the rule group of AlertRules.
const AlertGroupName = "bollard"

// runbook is where docs/operations.md explains each alert.
const runbook = "https://github.com/bollard-io/bollard/blob/main/docs/operations.md#"

// DropAlertReasons are the drop reasons that BollardMessagesDropped alerts
// on: a queue or the store is full, or a message cannot be delivered at
// all. The other reasons are expected in normal operation (QoS 0 to
// offline or slow clients, message and session expiry) or are the ACL at
// work.
var DropAlertReasons = []string{"queue_full", "quota_rejected", "store_full", "policy_store_full", "too_large"}

// AlertRules returns the alerting rules for the brokers whose series
// carry the label matchers of selector (for example
// `namespace="mqtt",job="edge-metrics"`; "" for every broker Prometheus
// scrapes).
func AlertRules(selector string) []RuleGroup {
	m := func(metric string, extra ...string) string {
		matchers := extra
		if selector != "" {
			matchers = append([]string{selector}, extra...)
		}
		if len(matchers) == 0 {
			return metric
		}
		return metric + "{" + strings.Join(matchers, ",") + "}"
	}
	by := "namespace, job, instance, pod"
	rules := []Rule{
		rule("BollardBrokerDown", "critical", "5m",
			fmt.Sprintf("%s == 0 and on (job, instance) last_over_time(%s[1h])", m("up"), m("bollard_build_info")),
			"Bollard broker {{ $labels.instance }} cannot be scraped",
			"Prometheus has not reached the broker at {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes: the process is down, restarting or unreachable.",
			"bollardbrokerdown"),
		// A cluster's followers are never ready (only the leader serves
		// clients); a member that is not a follower and not ready for
		// 10 minutes is stuck: recovering, draining, or a candidate
		// that cannot reach a majority.
		rule("BollardBrokerNotReady", "warning", "10m",
			fmt.Sprintf("%s == 0 unless on (job, instance) %s == 1", m("bollard_ready"), m("bollard_cluster_role", `role="follower"`)),
			"Bollard broker {{ $labels.instance }} is not ready",
			"The broker at {{ $labels.instance }} has answered /readyz with 503 for 10 minutes, and is not a cluster follower: it is still recovering its store, draining, or (a cluster member) a candidate that cannot win an election.",
			"bollardbrokernotready"),
		rule("BollardConfigNotApplied", "warning", "5m",
			fmt.Sprintf("%s > 0 or on (job, instance) %s == 1", m("bollard_config_refused_generation"), m("bollard_config_last_reload_failed")),
			"Bollard broker {{ $labels.instance }} refused its configuration",
			"The broker at {{ $labels.instance }} refused the newest version of its configuration file and runs on the previous one.",
			"bollardconfignotapplied"),
		rule("BollardConfigPendingRestart", "info", "30m",
			m("bollard_config_pending_restart")+" == 1",
			"Bollard broker {{ $labels.instance }} waits for a restart",
			"The configuration of the broker at {{ $labels.instance }} changed fields that apply only after a restart, 30 minutes ago.",
			"bollardconfigpendingrestart"),
		rule("BollardQueueNearLimit", "warning", "10m",
			m("bollard_queue_fullest_ratio")+" >= 0.9",
			"A session queue on {{ $labels.instance }} is at {{ $value | humanizePercentage }} of its limit",
			"The fullest session queue of the broker at {{ $labels.instance }} has been at 90% of its limit or more for 10 minutes: its overflow policy drops or refuses messages for that client when full.",
			"bollardqueuenearlimit"),
		rule("BollardMessagesDropped", "warning", "10m",
			fmt.Sprintf("sum by (%s, reason) (rate(%s[5m])) > 0", by,
				m("bollard_dropped_messages_total", `reason=~"`+strings.Join(DropAlertReasons, "|")+`"`)),
			"Bollard broker {{ $labels.instance }} drops messages ({{ $labels.reason }})",
			"The broker at {{ $labels.instance }} has been dropping messages for 10 minutes, reason {{ $labels.reason }}, {{ $value | humanize }} per second.",
			"bollardmessagesdropped"),
		rule("BollardStoragePressure", "critical", "5m",
			m("bollard_store_pressure")+" == 1",
			"Bollard broker {{ $labels.instance }} is at its store budget",
			"The store of the broker at {{ $labels.instance }} is at 95% of its budget or more, or its volume below the free space reserve: new messages for offline sessions are refused.",
			"bollardstoragepressure"),
		rule("BollardFsyncSlow", "warning", "15m",
			fmt.Sprintf("histogram_quantile(0.99, sum by (%s, le) (rate(%s[5m]))) > 0.1", by, m("bollard_store_fsync_duration_seconds_bucket")),
			"Bollard broker {{ $labels.instance }} has slow fsyncs",
			"The 99th percentile of the write-ahead log fsyncs of the broker at {{ $labels.instance }} has been above 100 ms for 15 minutes: every acknowledgement in sync durability waits for one.",
			"bollardfsyncslow"),
		rule("BollardWriteStalls", "warning", "15m",
			fmt.Sprintf("sum by (%s) (rate(%s[5m])) > 0.05", by, m("bollard_store_write_stall_seconds_total")),
			"Bollard broker {{ $labels.instance }} stops its store's writes",
			"The store of the broker at {{ $labels.instance }} has stopped every commit {{ $value | humanizePercentage }} of the time for 15 minutes, waiting for its flushes or compactions: acknowledgements wait with it.",
			"bollardwritestalls"),
		// A store that fails its commits fails publishes, subscriptions and
		// sessions; the few commits in flight at a cluster's failover fail
		// once and do not keep the rate up for the 10 minutes.
		rule("BollardStoreCommitErrors", "critical", "10m",
			fmt.Sprintf("sum by (%s) (rate(%s[5m])) > 0", by, m("bollard_store_commit_errors_total")),
			"Bollard broker {{ $labels.instance }} fails to store",
			"The store of the broker at {{ $labels.instance }} has been failing commits for 10 minutes ({{ $value | humanize }} per second): publishes get an error, and subscriptions and session state are not stored. Its log says why (lines starting with \"storing\").",
			"bollardstorecommiterrors"),
		// Before the stalls: level 0 half way to where every write stops,
		// for long enough that it is not one burst the compactions absorb.
		rule("BollardStoreCompactionBehind", "warning", "15m",
			fmt.Sprintf("%s / %s > 0.5", m("bollard_store_l0_sublevels"), m("bollard_store_l0_stop_writes_sublevels")),
			"Bollard broker {{ $labels.instance }}'s compactions fall behind its writes",
			"Level 0 of the store of the broker at {{ $labels.instance }} has been at {{ $value | humanizePercentage }} of the sublevels at which every write stops, for 15 minutes: its compactions do not keep up with the write rate, and write stalls (every acknowledgement in sync mode waiting) follow if it grows.",
			"bollardstorecompactionbehind"),

		// Replication (brokers with replicas 3 or 5). Grouped by job: the
		// members of one MQTTBroker share its metrics Service.
		rule("BollardClusterNoLeader", "critical", "1m",
			fmt.Sprintf("max by (namespace, job) (%s) == 0", m("bollard_cluster_serving")),
			"Bollard cluster {{ $labels.job }} has no member serving clients",
			"No member of the cluster behind {{ $labels.job }} has served MQTT clients for a minute: no leader could be elected (a majority of members down or cut off from each other), or the elected one cannot recover its store. Clients are refused.",
			"bollardclusternoleader"),
		rule("BollardClusterMemberUnreachable", "warning", "5m",
			m("bollard_cluster_follower_last_contact_seconds")+" > 30",
			"Cluster member {{ $labels.member }} does not answer the leader",
			"The leader at {{ $labels.instance }} has had no answer from member {{ $labels.member }} for more than 30 seconds, for 5 minutes: the member is down, cut off, or too slow to answer. The cluster serves while a majority answers; one more member lost stops it.",
			"bollardclustermemberunreachable"),
		rule("BollardClusterMemberBehind", "warning", "5m",
			fmt.Sprintf("min_over_time(%s[10m]) > 1000 unless on (job, instance, member) %s > 30",
				m("bollard_cluster_follower_lag_entries"), m("bollard_cluster_follower_last_contact_seconds")),
			"Cluster member {{ $labels.member }} does not keep up with the leader",
			"Member {{ $labels.member }} has been more than 1,000 log entries behind the leader at {{ $labels.instance }} for 15 minutes while it answers: its disk or CPU is slower than the leader's, or it keeps installing snapshots. One more member lost stops the cluster.",
			"bollardclustermemberbehind"),
		rule("BollardClusterElections", "warning", "5m",
			fmt.Sprintf("max by (namespace, job) (changes(%s[15m])) > 3", m("bollard_cluster_term")),
			"Bollard cluster {{ $labels.job }} keeps electing leaders",
			"The cluster behind {{ $labels.job }} has held more than 3 elections in 15 minutes: clients are disconnected at each one. The members lose contact with each other (network, CPU starvation, slow disks) or keep restarting.",
			"bollardclusterelections"),
		rule("BollardClusterReplicationRefused", "warning", "15m",
			fmt.Sprintf("rate(%s[5m]) > 0", m("bollard_cluster_refused_connections_total")),
			"Cluster member {{ $labels.instance }} refuses replication connections",
			"The member at {{ $labels.instance }} has refused replication connections for 15 minutes: something connects to its replication port without the cluster secret, or a rolling upgrade stopped half-way (an earlier build refuses the newer members' questions).",
			"bollardclusterreplicationrefused"),
	}
	return []RuleGroup{{Name: AlertGroupName, Rules: rules}}
}

func rule(name, severity, forDuration, expr, summary, description, anchor string) Rule {
	return Rule{
		Alert: name, Expr: expr, For: forDuration,
		Labels: map[string]string{"severity": severity},
		Annotations: map[string]string{
			"summary": summary, "description": description, "runbook_url": runbook + anchor,
		},
	}
}

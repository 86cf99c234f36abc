package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
)

// ClusterAdmin is the replication side of a cluster member, as the admin
// endpoint drives and reports it. *cluster.Node implements it (cmd/bollard
// makes the transfers through replica.Engine, which quiesces the term's
// engine first); a single node has none.
type ClusterAdmin interface {
	Status() cluster.Status
	AddMember(ctx context.Context, m cluster.Member) error
	RemoveMember(id string) error
	TransferLeadership() error
}

// maxMemberBody bounds the JSON body of POST /v1/cluster/members.
const maxMemberBody = 4 << 10

// addMemberTimeout bounds how long POST /v1/cluster/members waits for the
// new member to catch up before it becomes a voter.
const addMemberTimeout = 10 * time.Minute

// clusterRoutes adds the cluster endpoints to the authenticated /v1 mux:
//
//	GET    /v1/cluster                       this member's view (role, term, members, lag)
//	POST   /v1/cluster/members               {"id", "raftAddress", "clientAddress"}: add a member (on the leader)
//	DELETE /v1/cluster/members/{id}          remove a member (on the leader)
//	POST   /v1/cluster/leadership-transfer   hand leadership to the most up-to-date follower,
//	                                         or to {"to": "<member ID>"}
//	GET|PUT|DELETE /v1/cluster/handover      readiness handover (handover.go)
//
// On a member that does not lead, the changes answer 409 with the leader's
// ID, so a caller can retry there.
func (a *admin) clusterRoutes(mux *http.ServeMux) {
	c := a.cfg.Cluster
	if c == nil {
		return
	}
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})
	mux.HandleFunc("POST /v1/cluster/members", func(w http.ResponseWriter, r *http.Request) {
		var m adminapi.AddMember
		dec := json.NewDecoder(io.LimitReader(r.Body, maxMemberBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("cluster: member: %w", err))
			return
		}
		if err := config.CheckClusterMember(config.ClusterMember{ID: m.ID, RaftAddress: m.RaftAddress, ClientAddress: m.ClientAddress}); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), addMemberTimeout)
		defer cancel()
		a.clusterResult(w, c, c.AddMember(ctx, cluster.Member{ID: m.ID, RaftAddress: m.RaftAddress, ClientAddress: m.ClientAddress}))
	})
	mux.HandleFunc("DELETE /v1/cluster/members/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.clusterResult(w, c, c.RemoveMember(r.PathValue("id")))
	})
	a.handoverRoutes(mux, c)
}

func (a *admin) clusterResult(w http.ResponseWriter, c ClusterAdmin, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, c.Status())
	case errors.Is(err, cluster.ErrNotLeader):
		st := c.Status()
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: err.Error(), Leader: st.LeaderID})
	case errors.Is(err, cluster.ErrInvalidMember):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, cluster.ErrMemberFormat):
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: err.Error(), Reason: adminapi.ReasonMemberFormat})
	default:
		a.cfg.Log.Warn("cluster change failed", "err", err)
		writeError(w, http.StatusInternalServerError, err)
	}
}

var (
	descClusterRole = prometheus.NewDesc("bollard_cluster_role",
		"1 for this member's replication role (leader, follower, candidate, shutdown), 0 for the others.", []string{"role"}, nil)
	descClusterServing = prometheus.NewDesc("bollard_cluster_serving",
		"1 when this member serves MQTT clients (the leader, once it applied the log).", nil, nil)
	descClusterTerm = prometheus.NewDesc("bollard_cluster_term",
		"Current Raft term; it grows with every election.", nil, nil)
	descClusterIndex = prometheus.NewDesc("bollard_cluster_log_index",
		"Raft log positions of this member: last (written), commit (known committed), applied (in its store), snapshot (latest snapshot).", []string{"kind"}, nil)
	descClusterMembers = prometheus.NewDesc("bollard_cluster_members",
		"Members in the cluster configuration, by suffrage.", []string{"suffrage"}, nil)
	descClusterLag = prometheus.NewDesc("bollard_cluster_follower_lag_entries",
		"On the leader: log entries each follower is behind the leader's last index, as it last reported.", []string{"member"}, nil)
	descClusterContact = prometheus.NewDesc("bollard_cluster_follower_last_contact_seconds",
		"On the leader: seconds since each follower last answered; for one that has not answered since this member leads, how long it has led.", []string{"member"}, nil)
	descClusterRefused = prometheus.NewDesc("bollard_cluster_refused_connections_total",
		"Replication connections refused because the peer did not prove it holds the cluster secret (or sent something else).", nil, nil)

	descClusterFormat = prometheus.NewDesc("bollard_cluster_entry_format",
		"Log entry formats: the one the cluster agreed on as this member applied it (cluster; the leader writes it), the highest this member's build reads (reads).", []string{"kind"}, nil)

	descLogAppends = prometheus.NewDesc("bollard_cluster_log_appends_total",
		"Appends to this member's Raft log (each synced once), since the process started.", nil, nil)
	descLogEntries = prometheus.NewDesc("bollard_cluster_log_written_entries_total",
		"Entries written to this member's Raft log, since the process started.", nil, nil)
	descLogBytes = prometheus.NewDesc("bollard_cluster_log_written_bytes_total",
		"Encoded bytes of the entries written to this member's Raft log, since the process started.", nil, nil)
	descLogSegments = prometheus.NewDesc("bollard_cluster_log_segments_total",
		"Raft log segment files begun, by how: spare (filled and synced ahead of time) or in_place (filled by the append that needed it, which waited for it).", []string{"created"}, nil)
	descLogTruncated = prometheus.NewDesc("bollard_cluster_log_truncated_entries_total",
		"Entries removed from this member's Raft log: head (after a snapshot), tail (replaced by a new leader's entries; never committed).", []string{"end"}, nil)

	clusterDescs = []*prometheus.Desc{descClusterRole, descClusterServing, descClusterTerm, descClusterIndex,
		descClusterMembers, descClusterLag, descClusterContact, descClusterRefused, descClusterFormat,
		descLogAppends, descLogEntries, descLogBytes, descLogSegments, descLogTruncated}
)

// collectCluster exports a member's replication state.
func collectCluster(s cluster.Status, ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, r := range []cluster.Role{cluster.Leader, cluster.Follower, cluster.Candidate, cluster.Shutdown} {
		gauge(descClusterRole, b2f(s.Role == r), string(r))
	}
	gauge(descClusterServing, b2f(s.Serving))
	gauge(descClusterTerm, float64(s.Term))
	gauge(descClusterIndex, float64(s.LastLogIndex), "last")
	gauge(descClusterIndex, float64(s.CommitIndex), "commit")
	gauge(descClusterIndex, float64(s.AppliedIndex), "applied")
	gauge(descClusterIndex, float64(s.LastSnapshotIndex), "snapshot")
	gauge(descClusterFormat, float64(s.EntryFormat), "cluster")
	gauge(descClusterFormat, float64(s.ReadsFormat), "reads")
	voters, nonvoters := 0, 0
	for _, m := range s.Members {
		if m.Voter {
			voters++
		} else {
			nonvoters++
		}
		if m.Lag != nil {
			gauge(descClusterLag, float64(*m.Lag), m.ID)
		}
		if m.LastContactMilli != nil {
			gauge(descClusterContact, float64(*m.LastContactMilli)/1000, m.ID)
		}
	}
	gauge(descClusterMembers, float64(voters), "voter")
	gauge(descClusterMembers, float64(nonvoters), "nonvoter")
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descClusterRefused, uint64(s.RefusedConnections))
	counter(descLogAppends, s.Log.Appends)
	counter(descLogEntries, s.Log.WrittenEntries)
	counter(descLogBytes, s.Log.WrittenBytes)
	counter(descLogSegments, s.Log.SegmentsFromSpare, "spare")
	counter(descLogSegments, s.Log.SegmentsFilledInPlace, "in_place")
	counter(descLogTruncated, s.Log.TruncatedHead, "head")
	counter(descLogTruncated, s.Log.TruncatedTail, "tail")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

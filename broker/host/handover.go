package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/replica"
)

// HandoverAdmin is a cluster member's readiness handover (broker/replica):
// an operator makes the successor ready and the leader unready before it
// transfers leadership to that successor, so that clients reconnecting
// through a readiness-following Service reach the new leader at once.
// The ClusterAdmin of a member implements it (cmd/bollard).
type HandoverAdmin interface {
	TransferLeadershipTo(id string) error
	PrepareHandover(r replica.HandoverRole, ttl time.Duration) (time.Duration, error)
	HandoverStatus() replica.HandoverStatus
}

// maxHandoverBody bounds the JSON bodies of the handover endpoints.
const maxHandoverBody = 1 << 10

func handoverView(s replica.HandoverStatus) adminapi.Handover {
	return adminapi.Handover{Role: s.Role.String(), RemainingMilli: s.Remaining.Milliseconds(), Held: s.Held,
		Served: s.Served, TimedOut: s.TimedOut, OverLimit: s.OverLimit, Abandoned: s.Abandoned}
}

// handoverRoutes adds, on a member whose ClusterAdmin implements
// HandoverAdmin:
//
//	GET    /v1/cluster/handover   the member's handover role and held connections
//	PUT    /v1/cluster/handover   {"role": "successor"|"predecessor"|"none", "ttlMs": N}
//	DELETE /v1/cluster/handover   end the role: readiness follows leadership
//
// and lets POST /v1/cluster/leadership-transfer name the member to hand
// leadership to ({"to": "<member ID>"}; no body: the most up-to-date).
func (a *admin) handoverRoutes(mux *http.ServeMux, c ClusterAdmin) {
	h, ok := c.(HandoverAdmin)
	mux.HandleFunc("POST /v1/cluster/leadership-transfer", func(w http.ResponseWriter, r *http.Request) {
		var body adminapi.LeadershipTransfer
		err := readSmallJSON(r, &body, true)
		switch {
		case err != nil:
			writeError(w, http.StatusBadRequest, fmt.Errorf("cluster: leadership transfer: %w", err))
		case body.To == "":
			a.clusterResult(w, c, c.TransferLeadership())
		case !ok:
			writeError(w, http.StatusNotImplemented, errors.New("cluster: this member cannot transfer to a named member"))
		default:
			a.clusterResult(w, c, h.TransferLeadershipTo(body.To))
		}
	})
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/cluster/handover", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, handoverView(h.HandoverStatus()))
	})
	mux.HandleFunc("PUT /v1/cluster/handover", func(w http.ResponseWriter, r *http.Request) {
		role, ttl, err := readHandoverRequest(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("cluster: handover: %w", err))
			return
		}
		_, err = h.PrepareHandover(role, ttl)
		a.handoverResult(w, c, h, err)
	})
	mux.HandleFunc("DELETE /v1/cluster/handover", func(w http.ResponseWriter, _ *http.Request) {
		_, err := h.PrepareHandover(replica.HandoverNone, 0)
		a.handoverResult(w, c, h, err)
	})
}

// readHandoverRequest reads {"role": ..., "ttlMs": N} (N in [0, 1 h]; the
// member bounds it further).
func readHandoverRequest(r *http.Request) (replica.HandoverRole, time.Duration, error) {
	var body adminapi.HandoverRequest
	if err := readSmallJSON(r, &body, false); err != nil {
		return replica.HandoverNone, 0, err
	}
	role, err := replica.ParseHandoverRole(body.Role)
	if err != nil {
		return replica.HandoverNone, 0, err
	}
	if body.TTLMilli < 0 || body.TTLMilli > int64(time.Hour/time.Millisecond) {
		return replica.HandoverNone, 0, fmt.Errorf("%w: ttlMs %d", replica.ErrHandoverTTL, body.TTLMilli)
	}
	return role, time.Duration(body.TTLMilli) * time.Millisecond, nil
}

// readSmallJSON decodes a request body of at most maxHandoverBody bytes
// strictly into v; an empty body is allowed when optional.
func readSmallJSON(r *http.Request, v any, optional bool) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxHandoverBody+1))
	switch {
	case err != nil:
		return err
	case len(raw) > maxHandoverBody:
		return errors.New("body too large")
	case len(raw) == 0 && optional:
		return nil
	}
	return decodeStrict(raw, v)
}

func (a *admin) handoverResult(w http.ResponseWriter, c ClusterAdmin, h HandoverAdmin, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, handoverView(h.HandoverStatus()))
	case errors.Is(err, replica.ErrHandoverTTL):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, replica.ErrHandover), errors.Is(err, cluster.ErrNotLeader):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error(), "leader": c.Status().LeaderID})
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

var (
	descHandoverRole = prometheus.NewDesc("bollard_cluster_handover_role",
		"1 for this member's part in a readiness handover (none, successor: ready ahead of leading; predecessor: unready ahead of handing over), 0 for the others.", []string{"role"}, nil)
	descHeld = prometheus.NewDesc("bollard_cluster_held_connections",
		"Connections a member holds until it serves (it prepares to lead, or its engine recovers).", nil, nil)
	descHeldTotal = prometheus.NewDesc("bollard_cluster_held_connections_total",
		"Connections held until the member served, by outcome: served; timeout (refused after the hold's bound); limit (refused at once: too many held); abandoned (refused: the member will not lead).", []string{"outcome"}, nil)

	handoverDescs = []*prometheus.Desc{descHandoverRole, descHeld, descHeldTotal}
)

// collectHandover exports a member's handover state.
func collectHandover(c ClusterAdmin, ch chan<- prometheus.Metric) {
	h, ok := c.(HandoverAdmin)
	if !ok {
		return
	}
	s := h.HandoverStatus()
	for r := replica.HandoverNone; r <= replica.HandoverPredecessor; r++ {
		ch <- prometheus.MustNewConstMetric(descHandoverRole, prometheus.GaugeValue, b2f(s.Role == r), r.String())
	}
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(s.Held))
	for _, o := range []struct {
		name string
		v    uint64
	}{{"served", s.Served}, {"timeout", s.TimedOut}, {"limit", s.OverLimit}, {"abandoned", s.Abandoned}} {
		ch <- prometheus.MustNewConstMetric(descHeldTotal, prometheus.CounterValue, float64(o.v), o.name)
	}
}

// handingOver reports whether this member steps back for a handover (its
// /readyz says so).
func (a *admin) handingOver() bool {
	h, ok := a.cfg.Cluster.(HandoverAdmin)
	return ok && h.HandoverStatus().Role == replica.HandoverPredecessor
}

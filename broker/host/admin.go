package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/engine"
)

// Admin HTTP limits: the endpoint is for probes, scrapers and operators,
// never for bulk traffic.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminMaxHeaderBytes    = 16 << 10
	// defaultSessionListLimit bounds a /v1/sessions answer unless ?limit=
	// asks for another bound (at most maxSessionListLimit).
	defaultSessionListLimit = 1000
	maxSessionListLimit     = 100000
)

// AdminBackend is what the admin endpoint reads from the engine.
// *engine.Server implements it.
type AdminBackend interface {
	Ready() bool
	Stats() engine.Stats
	Sessions() []engine.SessionInfo
	Session(clientID string) (engine.SessionInfo, bool)
	ConfigGeneration() int64
}

// AdminConfig wires the admin endpoint to the engine and to the Runner
// that hosts it.
type AdminConfig struct {
	// Backend is the broker.
	Backend AdminBackend
	// Version is reported by /v1/status and the bollard_build_info metric.
	Version string
	// Started is the process start time, for uptime.
	Started time.Time
	// Ready reports overall readiness (recovered, listeners accepting,
	// serving clients, not draining); nil means Backend.Ready.
	Ready func() bool
	// Drain starts a drain and returns at once; nil disables POST /v1/drain.
	Drain func()
	// Draining reports whether a drain started; nil means never.
	Draining func() bool
	// Role says whether this member serves clients; nil means Single.
	Role Role
	// Reload reports the config reloader's state; nil when no config file
	// is watched.
	Reload func() ReloadStatus
	// Log receives request errors; nil means slog.Default().
	Log *slog.Logger
	// Auth guards /v1/*; nil refuses every /v1/* request (403).
	Auth *AdminAuth
	// Cluster is the replication side of a cluster member; nil for a
	// single node. It adds /v1/cluster* and the bollard_cluster_* metrics.
	Cluster ClusterAdmin
}

// Status is the JSON body of /v1/status. The operator reads
// configGeneration to confirm that a pod applied its ConfigMap.
type Status struct {
	Version string `json:"version"`
	// ConfigGeneration is the generation of the configuration applied.
	ConfigGeneration int64 `json:"configGeneration"`
	// PendingRestart is true when the config file changed fields that
	// take effect only after a restart; PendingRestartFields names them.
	PendingRestart       bool     `json:"pendingRestart"`
	PendingRestartFields []string `json:"pendingRestartFields,omitempty"`
	// LastReloadError is the error of the last reload attempt, if it
	// failed; the broker then runs on with the previous configuration.
	LastReloadError string    `json:"lastReloadError,omitempty"`
	LastReloadTime  time.Time `json:"lastReloadTime,omitzero"`
	ConfigFile      string    `json:"configFile,omitempty"`
	Ready           bool      `json:"ready"`
	Draining        bool      `json:"draining"`
	StartedAt       time.Time `json:"startedAt"`
	UptimeSeconds   float64   `json:"uptimeSeconds"`
	Connections     int64     `json:"connections"`
	SessionsOnline  int64     `json:"sessionsOnline"`
	SessionsOffline int64     `json:"sessionsOffline"`
	QueuedMessages  int64     `json:"queuedMessages"`
	QueuedBytes     int64     `json:"queuedBytes"`
	// CountedAt is when the session and queue figures were counted: one
	// census serves every request for up to a second.
	CountedAt time.Time `json:"countedAt,omitzero"`
	// TopQueues are the StatusTopQueues deepest session queues, deepest
	// first (empty queues are not listed).
	TopQueues []engine.QueueDepth `json:"topQueues"`
	// FullestQueueRatio is the fill of the fullest session queue: its
	// messages or bytes over the queue limit, whichever is larger.
	FullestQueueRatio float64 `json:"fullestQueueRatio"`
	// RecentDrops counts the messages dropped over the last DropWindow.
	RecentDrops RecentDrops `json:"recentDrops"`

	// RefusedConfigGeneration is the configGeneration of the newest config
	// file version the broker refused (while no later one was applied),
	// and RefusedConfigError why: that generation is not in force.
	RefusedConfigGeneration int64  `json:"refusedConfigGeneration,omitempty"`
	RefusedConfigError      string `json:"refusedConfigError,omitempty"`

	// Storage is the store budget and the disk; the operator sets the
	// StoragePressure condition from Storage.Pressure.
	Storage engine.StorageStats `json:"storage"`

	// Cluster is this member's view of replication (cluster members only).
	Cluster *cluster.Status `json:"cluster,omitempty"`
}

// MarshalJSON writes the status; a cluster member that does not serve
// holds no sessions in memory (only the leader does), so its session and
// queue figures are left out rather than written as zeros that would say
// the cluster has none: ask the leader for them.
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status
	if s.Cluster == nil || s.Cluster.Serving {
		return json.Marshal(plain(s))
	}
	// The outer fields hide the embedded ones of the same name; nil, they
	// are left out.
	return json.Marshal(struct {
		plain
		SessionsOnline    *int64              `json:"sessionsOnline,omitempty"`
		SessionsOffline   *int64              `json:"sessionsOffline,omitempty"`
		QueuedMessages    *int64              `json:"queuedMessages,omitempty"`
		QueuedBytes       *int64              `json:"queuedBytes,omitempty"`
		CountedAt         *time.Time          `json:"countedAt,omitempty"`
		TopQueues         []engine.QueueDepth `json:"topQueues,omitempty"`
		FullestQueueRatio *float64            `json:"fullestQueueRatio,omitempty"`
	}{plain: plain(s)})
}

// RecentDrops are the drops of the last WindowSeconds, by reason (the
// Drop* constants); reasons without drops are left out.
type RecentDrops struct {
	WindowSeconds int64             `json:"windowSeconds"`
	ByReason      map[string]uint64 `json:"byReason"`
}

// SessionList is the JSON body of GET /v1/sessions.
type SessionList struct {
	// Total is the number of sessions; Sessions holds at most the
	// requested limit of them, by client ID, and Truncated says so.
	Total     int                  `json:"total"`
	Truncated bool                 `json:"truncated"`
	Sessions  []engine.SessionInfo `json:"sessions"`
}

// admin serves the admin endpoint.
type admin struct {
	cfg     AdminConfig
	metrics http.Handler
}

// NewAdminHandler returns the admin endpoint: /healthz, /readyz and
// /metrics, open to all (they reveal no client IDs or usernames), and
// /v1/status, /v1/sessions, /v1/sessions/{id} and POST /v1/drain, which
// c.Auth guards.
func NewAdminHandler(c AdminConfig) http.Handler {
	if c.Ready == nil {
		c.Ready = c.Backend.Ready
	}
	if c.Draining == nil {
		c.Draining = func() bool { return false }
	}
	if c.Role == nil {
		c.Role = Single{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	a := &admin{cfg: c, metrics: newMetricsHandler(c)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", a.metrics)
	// Everything under /v1/ needs the admin token (see AdminAuth),
	// including paths and methods that do not exist, so that an
	// unauthenticated caller learns nothing about the API.
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/status", a.status)
	v1.HandleFunc("GET /v1/sessions", a.sessions)
	v1.HandleFunc("GET /v1/sessions/{id}", a.session)
	v1.HandleFunc("POST /v1/drain", a.drain)
	a.clusterRoutes(v1)
	mux.Handle("/v1/", c.Auth.guard(v1.ServeHTTP))
	return mux
}

// healthz answers 200 while the process serves HTTP at all.
func (a *admin) healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

// readyz answers 200 only once the store is recovered and the listeners
// accept, while the Role serves clients, and 503 again from the moment a
// drain starts.
func (a *admin) readyz(w http.ResponseWriter, _ *http.Request) {
	serving, _ := a.cfg.Role.Serving()
	switch {
	case a.cfg.Draining():
		writeText(w, http.StatusServiceUnavailable, "not ready: draining")
	case !serving:
		writeText(w, http.StatusServiceUnavailable, "not ready: not serving clients")
	case !a.cfg.Ready() && a.handingOver():
		writeText(w, http.StatusServiceUnavailable, "not ready: handing leadership over")
	case !a.cfg.Ready():
		writeText(w, http.StatusServiceUnavailable, "not ready: starting")
	default:
		writeText(w, http.StatusOK, "ok")
	}
}

func (a *admin) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.snapshot())
}

// snapshot gathers /v1/status.
func (a *admin) snapshot() Status {
	st := a.cfg.Backend.Stats()
	s := Status{
		Version:          a.cfg.Version,
		ConfigGeneration: a.cfg.Backend.ConfigGeneration(),
		Ready:            a.cfg.Ready() && !a.cfg.Draining(),
		Draining:         a.cfg.Draining(),
		StartedAt:        a.cfg.Started.UTC(),
		UptimeSeconds:    time.Since(a.cfg.Started).Seconds(),
		Connections:      st.Connections,
		SessionsOnline:   st.SessionsOnline,
		SessionsOffline:  st.SessionsOffline,
		QueuedMessages:   st.QueuedMessages,
		QueuedBytes:      st.QueuedBytes,
		Storage:          st.Storage,

		CountedAt:         st.CensusAt.UTC(),
		TopQueues:         st.TopQueues[:min(len(st.TopQueues), engine.StatusTopQueues)],
		FullestQueueRatio: st.FullestQueue,
		RecentDrops:       RecentDrops{WindowSeconds: int64(engine.DropWindow / time.Second), ByReason: map[string]uint64{}},
	}
	if s.TopQueues == nil {
		s.TopQueues = []engine.QueueDepth{}
	}
	for r, n := range st.RecentDrops {
		if n > 0 {
			s.RecentDrops.ByReason[r] = n
		}
	}
	if a.cfg.Reload != nil {
		r := a.cfg.Reload()
		s.PendingRestart = len(r.PendingRestartFields) > 0
		s.PendingRestartFields = r.PendingRestartFields
		s.LastReloadError = r.LastError
		s.LastReloadTime = r.LastReloadTime
		s.RefusedConfigGeneration, s.RefusedConfigError = r.RefusedGeneration, r.RefusedError
		s.ConfigFile = r.ConfigFile
	}
	if a.cfg.Cluster != nil {
		cs := a.cfg.Cluster.Status()
		s.Cluster = &cs
	}
	return s
}

// sessions lists sessions, or describes one with ?clientId=.
func (a *admin) sessions(w http.ResponseWriter, r *http.Request) {
	if id, ok := r.URL.Query()["clientId"]; ok {
		a.writeSession(w, id[0])
		return
	}
	limit, err := parseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	all := a.cfg.Backend.Sessions()
	slices.SortFunc(all, func(x, y engine.SessionInfo) int { return strings.Compare(x.ClientID, y.ClientID) })
	out := SessionList{Total: len(all), Sessions: all}
	if len(all) > limit {
		out.Sessions, out.Truncated = all[:limit], true
	}
	if out.Sessions == nil {
		out.Sessions = []engine.SessionInfo{}
	}
	writeJSON(w, http.StatusOK, out)
}

// parseLimit reads the ?limit= of /v1/sessions.
func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultSessionListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxSessionListLimit {
		return 0, fmt.Errorf("limit must be between 1 and %d, got %q", maxSessionListLimit, s)
	}
	return n, nil
}

func (a *admin) session(w http.ResponseWriter, r *http.Request) {
	a.writeSession(w, r.PathValue("id"))
}

func (a *admin) writeSession(w http.ResponseWriter, clientID string) {
	info, ok := a.cfg.Backend.Session(clientID)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no session for client ID %q", clientID))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// drain starts a drain: readiness turns false at once, new connections are
// refused and clients are disconnected. A drain is a shutdown step: once
// it completes, the Runner closes the store and returns, so the process
// exits (and Kubernetes restarts the container) rather than idling with
// its listeners closed while /healthz answers 200.
func (a *admin) drain(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.Drain == nil {
		writeError(w, http.StatusNotImplemented, errors.New("drain is not available"))
		return
	}
	a.cfg.Log.Info("drain requested on the admin endpoint")
	a.cfg.Drain()
	writeJSON(w, http.StatusAccepted, map[string]bool{"draining": true})
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg) // a failed write means the client left
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a failed write means the client left
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// AdminServer serves the admin handler on its own listener.
type AdminServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// ListenAdmin binds addr and serves h on it until Shutdown.
func ListenAdmin(addr string, h http.Handler, log *slog.Logger) (*AdminServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("host: admin listener on %s: %w", addr, err)
	}
	a := &AdminServer{
		ln: &capListener{Listener: ln, max: maxAdminConns, refused: &adminConnsRefused},
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: adminReadHeaderTimeout,
			ReadTimeout:       httpReadTimeout,
			IdleTimeout:       httpIdleTimeout,
			WriteTimeout:      adminWriteTimeout,
			MaxHeaderBytes:    adminMaxHeaderBytes,
			ErrorLog:          slogErrorLog(log, "admin"),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin endpoint stopped", "err", err)
		}
	}()
	log.Info("admin endpoint listening", "address", ln.Addr().String())
	return a, nil
}

// Addr is the bound address (useful with port 0).
func (a *AdminServer) Addr() net.Addr { return a.ln.Addr() }

// Shutdown stops the endpoint, letting requests in progress finish until
// ctx is done.
func (a *AdminServer) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	<-a.done
	if err != nil {
		return fmt.Errorf("host: admin shutdown: %w", err)
	}
	return nil
}

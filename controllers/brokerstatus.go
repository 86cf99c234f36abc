package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/bollard-io/bollard/broker/adminapi"
)

// BrokerStatus is the part of a broker's GET /v1/status body the operator
// reads.
type BrokerStatus struct {
	Version string `json:"version"`
	// ConfigGeneration is the configGeneration of the configuration file the
	// broker applied.
	ConfigGeneration int64 `json:"configGeneration"`
	// LastReloadError is set when the broker refused the current file and
	// runs on with the previous one.
	LastReloadError string `json:"lastReloadError,omitempty"`
	SessionsOnline  int64  `json:"sessionsOnline"`
	SessionsOffline int64  `json:"sessionsOffline"`
	QueuedMessages  int64  `json:"queuedMessages"`
	// QueuedBytes, FullestQueueRatio, TopQueues and RecentDrops are nil
	// when the broker does not report them (an older version): unknown,
	// not 0.
	QueuedBytes       *int64        `json:"queuedBytes,omitempty"`
	FullestQueueRatio *float64      `json:"fullestQueueRatio,omitempty"`
	TopQueues         []BrokerQueue `json:"topQueues,omitempty"`
	RecentDrops       *BrokerDrops  `json:"recentDrops,omitempty"`

	// RefusedConfigGeneration and RefusedConfigError: the newest
	// configuration generation the broker refused, and why (see
	// broker/host.Status).
	RefusedConfigGeneration int64  `json:"refusedConfigGeneration,omitempty"`
	RefusedConfigError      string `json:"refusedConfigError,omitempty"`

	// Storage is the broker's store budget and disk use; nil when the
	// broker does not report it.
	Storage *BrokerStorage `json:"storage,omitempty"`

	// Cluster is a cluster member's view of replication; nil for a single
	// node. A member that does not serve (Serving false) holds no
	// sessions: its session and queue figures are 0, not the cluster's.
	Cluster *adminapi.ClusterStatus `json:"cluster,omitempty"`
}

// BrokerQueue is one of the deepest queues of /v1/status (topQueues).
type BrokerQueue struct {
	ClientID string `json:"clientID"`
	Messages int64  `json:"messages"`
	Bytes    int64  `json:"bytes"`
	// Policy names the queue policy of the session; "" when the broker
	// reports none.
	Policy string `json:"policy,omitempty"`
}

// BrokerDrops are the recent drops of /v1/status (recentDrops).
type BrokerDrops struct {
	WindowSeconds int64             `json:"windowSeconds"`
	ByReason      map[string]uint64 `json:"byReason"`
}

// BrokerStorage is the storage part of /v1/status (bytes).
type BrokerStorage struct {
	Used       int64 `json:"usedBytes"`
	Budget     int64 `json:"budgetBytes"`
	VolumeFree int64 `json:"volumeFreeBytes"`
	Pressure   bool  `json:"pressure"`
}

// BrokerStatusReader asks a running broker pod what it applied, with the
// broker's admin token (the <name>-admin-token Secret). The production
// implementation is HTTPBrokerStatusReader; tests substitute a fake, since
// envtest runs no pods.
type BrokerStatusReader interface {
	BrokerStatus(ctx context.Context, pod *corev1.Pod, token string) (BrokerStatus, error)
}

// HTTPBrokerStatusReader reads GET /v1/status from the pod's admin port.
type HTTPBrokerStatusReader struct {
	// Client is used for the requests; nil means a client with a 5 s
	// timeout.
	Client *http.Client
	// Port is the admin port; 0 means v1alpha1.AdminPort.
	Port int
}

// maxStatusBody bounds what the operator reads from a broker.
const maxStatusBody = 1 << 20

// BrokerStatus implements BrokerStatusReader.
func (h HTTPBrokerStatusReader) BrokerStatus(ctx context.Context, pod *corev1.Pod, token string) (BrokerStatus, error) {
	var st BrokerStatus
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	ans, err := callAdmin(ctx, c, h.Port, pod, token, http.MethodGet, "/v1/status", nil, maxStatusBody)
	if err != nil {
		return st, err
	}
	switch ans.code {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return st, fmt.Errorf("controllers: GET /v1/status of %s: %s: the broker refused the admin token "+
			"(the kubelet may not have refreshed the mounted Secret yet)", pod.Name, ans.status)
	default:
		return st, fmt.Errorf("controllers: GET /v1/status of %s: %s", pod.Name, ans.status)
	}
	if err := json.Unmarshal(ans.body, &st); err != nil {
		return st, fmt.Errorf("controllers: decoding /v1/status of %s: %w", pod.Name, err)
	}
	return st, nil
}

package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
)

// ClusterAdmin drives a cluster's members through their admin API, with
// the broker's admin token. The production implementation is
// HTTPClusterAdmin; the envtest suite substitutes a fake.
type ClusterAdmin interface {
	// ClusterStatus reads GET /v1/cluster from the pod.
	ClusterStatus(ctx context.Context, pod *corev1.Pod, token string) (adminapi.ClusterStatus, error)
	// AddMember asks the leader to add m (POST /v1/cluster/members); it
	// returns once m votes, or with an error when ctx ends first (m then
	// stays a non-voter, catching up; asking again promotes it).
	AddMember(ctx context.Context, leader *corev1.Pod, token string, m config.ClusterMember) error
	// RemoveMember asks the leader to remove the member with the given ID.
	RemoveMember(ctx context.Context, leader *corev1.Pod, token, id string) error
	// TransferLeadership asks the leader to hand leadership to the most
	// up-to-date follower.
	TransferLeadership(ctx context.Context, leader *corev1.Pod, token string) error
	// TransferLeadershipTo asks the leader to hand leadership to the
	// member with the given ID (POST /v1/cluster/leadership-transfer
	// {"to": id}).
	TransferLeadershipTo(ctx context.Context, leader *corev1.Pod, token, id string) error
	// PrepareHandover gives the pod a role in a readiness handover
	// (adminapi.HandoverSuccessor, HandoverPredecessor or HandoverNone) for ttl (PUT
	// /v1/cluster/handover); the role ends by itself after ttl.
	PrepareHandover(ctx context.Context, pod *corev1.Pod, token, role string, ttl time.Duration) error
}

// HTTPClusterAdmin calls the members' admin port.
type HTTPClusterAdmin struct {
	// Client is used for the requests; nil means a client with a 10 s
	// timeout.
	Client *http.Client
	// Port is the admin port; 0 means v1alpha1.AdminPort.
	Port int
}

// maxClusterBody bounds what the operator reads from a member.
const maxClusterBody = 256 << 10

// ClusterStatus implements ClusterAdmin.
func (h HTTPClusterAdmin) ClusterStatus(ctx context.Context, pod *corev1.Pod, token string) (adminapi.ClusterStatus, error) {
	var v adminapi.ClusterStatus
	body, err := h.do(ctx, pod, token, http.MethodGet, "/v1/cluster", nil)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return v, fmt.Errorf("controllers: decoding GET /v1/cluster of %s: %w", pod.Name, err)
	}
	return v, nil
}

// AddMember implements ClusterAdmin.
func (h HTTPClusterAdmin) AddMember(ctx context.Context, leader *corev1.Pod, token string, m config.ClusterMember) error {
	b, err := json.Marshal(adminapi.AddMember{ID: m.ID, RaftAddress: m.RaftAddress, ClientAddress: m.ClientAddress})
	if err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	_, err = h.do(ctx, leader, token, http.MethodPost, "/v1/cluster/members", b)
	return err
}

// RemoveMember implements ClusterAdmin.
func (h HTTPClusterAdmin) RemoveMember(ctx context.Context, leader *corev1.Pod, token, id string) error {
	_, err := h.do(ctx, leader, token, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil)
	return err
}

// TransferLeadership implements ClusterAdmin.
func (h HTTPClusterAdmin) TransferLeadership(ctx context.Context, leader *corev1.Pod, token string) error {
	_, err := h.do(ctx, leader, token, http.MethodPost, "/v1/cluster/leadership-transfer", nil)
	return err
}

// TransferLeadershipTo implements ClusterAdmin.
func (h HTTPClusterAdmin) TransferLeadershipTo(ctx context.Context, leader *corev1.Pod, token, id string) error {
	b, err := json.Marshal(adminapi.LeadershipTransfer{To: id})
	if err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	_, err = h.do(ctx, leader, token, http.MethodPost, "/v1/cluster/leadership-transfer", b)
	return err
}

// PrepareHandover implements ClusterAdmin.
func (h HTTPClusterAdmin) PrepareHandover(ctx context.Context, pod *corev1.Pod, token, role string, ttl time.Duration) error {
	b, err := json.Marshal(adminapi.HandoverRequest{Role: role, TTLMilli: ttl.Milliseconds()})
	if err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	_, err = h.do(ctx, pod, token, http.MethodPut, "/v1/cluster/handover", b)
	return err
}

func (h HTTPClusterAdmin) do(ctx context.Context, pod *corev1.Pod, token, method, path string, body []byte) ([]byte, error) {
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	ans, err := callAdmin(ctx, c, h.Port, pod, token, method, path, body, maxClusterBody)
	if err != nil {
		return nil, err
	}
	if ans.code != http.StatusOK {
		e := &AdminError{Method: method, Path: path, Pod: pod.Name, Code: ans.code, Status: ans.status, Body: truncateBody(ans.body)}
		// Best effort: a member of an older build, or a proxy, may answer
		// something else; the error then carries the body alone.
		_ = json.Unmarshal(ans.body, &e.Answer)
		return nil, e
	}
	return ans.body, nil
}

// AdminError is a member's answer other than 200 to an admin call.
type AdminError struct {
	Method, Path, Pod string
	Code              int
	Status            string
	Body              string         // the answer, at most 256 bytes of it
	Answer            adminapi.Error // the answer decoded, when it was JSON
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("controllers: %s %s of %s: %s: %s", e.Method, e.Path, e.Pod, e.Status, e.Body)
}

// memberRefused reports whether err is the leader's refusal to add a
// member whose build does not read the cluster's log entry format, and
// what the leader said: asking again changes nothing until the member
// runs a newer build.
func memberRefused(err error) (string, bool) {
	var e *AdminError
	if errors.As(err, &e) && e.Code == http.StatusConflict && e.Answer.Reason == adminapi.ReasonMemberFormat {
		return e.Answer.Error, true
	}
	return "", false
}

// truncateBody quotes at most 256 bytes of a member's error answer.
func truncateBody(b []byte) string {
	const most = 256
	if len(b) > most {
		return string(bytes.TrimSpace(b[:most])) + "..."
	}
	return string(bytes.TrimSpace(b))
}

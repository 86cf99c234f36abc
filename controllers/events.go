package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// EventReason is the reason of an Event the operator records on an
// MQTTBroker. Tools filter on it, so the set is closed and documented here.
type EventReason string

// Event reasons.
const (
	// EventCreated: a child object was created.
	EventCreated EventReason = "Created"
	// EventUpdated: a child object was changed to match the spec.
	EventUpdated EventReason = "Updated"
	// EventDriftCorrected: fields of a child object the operator owns had
	// been changed by someone else and were put back to match the spec.
	EventDriftCorrected EventReason = "DriftCorrected"
	// EventDeleted: a child object the spec no longer wants was deleted.
	EventDeleted EventReason = "Deleted"
	// EventRestarted: the pod template changed, so the broker pods roll.
	EventRestarted EventReason = "Restarted"
	// EventApplyFailed: the apiserver refused a child object.
	EventApplyFailed EventReason = "ApplyFailed"
	// EventInvalidConfig: the spec renders a configuration the broker
	// rejects; the previous configuration stays in place.
	EventInvalidConfig EventReason = "InvalidConfig"
	// EventConfigRefused: a running broker refused the current
	// configuration (or its users file) and runs on with the previous one;
	// the message is the broker's error.
	EventConfigRefused EventReason = "ConfigRefused"
	// EventSecretNotFound: a referenced Secret or key does not exist.
	EventSecretNotFound EventReason = "SecretNotFound"
	// EventInvalidUsers: the users Secret has lines that are not
	// "username:bcrypt-hash" (the Event names the lines, never the hashes).
	EventInvalidUsers EventReason = "InvalidUsersSecret"
	// EventVolumeExpanding: a data claim's request was raised.
	EventVolumeExpanding EventReason = "VolumeExpanding"
	// EventVolumeExpansionFailed: the apiserver refused to raise a claim
	// (usually: its StorageClass does not allow expansion).
	EventVolumeExpansionFailed EventReason = "VolumeExpansionFailed"
	// EventVolumeShrinkRefused: the spec asks for a smaller volume than the
	// existing claim; volumes cannot shrink.
	EventVolumeShrinkRefused EventReason = "VolumeShrinkRefused"
	// EventServiceMonitorUnavailable: the spec asks for a ServiceMonitor but
	// its CRD (monitoring.coreos.com/v1) is not installed.
	EventServiceMonitorUnavailable EventReason = "ServiceMonitorUnavailable"
	// EventPrometheusRuleUnavailable: the spec asks for a PrometheusRule
	// but its CRD (monitoring.coreos.com/v1) is not installed.
	EventPrometheusRuleUnavailable EventReason = "PrometheusRuleUnavailable"
	// EventCertManagerUnavailable: the spec asks cert-manager for the TLS
	// certificate (spec.listeners.tls.issuerRef) but its Certificate CRD
	// (cert-manager.io/v1) is not installed.
	EventCertManagerUnavailable EventReason = "CertManagerUnavailable"
	// EventPaused: reconciling stopped because of the paused annotation.
	EventPaused EventReason = "Paused"
	// EventAdminTokenInvalid: the admin token Secret is not usable.
	EventAdminTokenInvalid EventReason = "AdminTokenInvalid"
	// EventClusterSecretInvalid: the cluster secret Secret is not usable.
	EventClusterSecretInvalid EventReason = "ClusterSecretInvalid"
	// EventMemberAdded: the leader added a member (it votes once caught
	// up).
	EventMemberAdded EventReason = "MemberAdded"
	// EventMemberRemoved: the leader removed a member.
	EventMemberRemoved EventReason = "MemberRemoved"
	// EventLeadershipTransferred: the leader handed leadership over.
	EventLeadershipTransferred EventReason = "LeadershipTransferred"
	// EventMemberRolled: a member's pod was deleted to roll it onto the
	// current pod template, or to move it off a cordoned node.
	EventMemberRolled EventReason = "MemberRolled"
	// EventRollStalled: a rolled member did not come back caught up in
	// time; the roll stops.
	EventRollStalled EventReason = "RollStalled"
	// EventClusterChangeFailed: a member refused a membership or
	// leadership change.
	EventClusterChangeFailed EventReason = "ClusterChangeFailed"
	// EventHandoverStarted: the operator chose the leader's successor and
	// began making it ready ahead of a leadership transfer (a readiness
	// handover); a step of it that fails has its own ClusterChangeFailed.
	EventHandoverStarted EventReason = "HandoverStarted"
)

// event records an Event on b about related (which may be nil).
func (r *MQTTBrokerReconciler) event(b *v1alpha1.MQTTBroker, related runtime.Object, warning bool, reason EventReason, action, format string, args ...any) {
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(b, related, typ, string(reason), action, format, args...)
}

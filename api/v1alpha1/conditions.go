package v1alpha1

// Condition types of an MQTTBroker (status.conditions[].type).
const (
	// ConditionReady is True when every broker replica is running the
	// current pod template and passes its readiness probe (/readyz: the
	// store is recovered and the listeners accept connections). For a
	// cluster (replicas 3 or 5), where only the leader passes /readyz, it
	// is True when a leader serves and a quorum of voting members is
	// healthy (caught up with the leader): reason NoLeader or
	// QuorumUnhealthy otherwise.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator is rolling out a change
	// (a new pod template, a volume expansion). It is False with reason
	// Paused while the paused annotation is set.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the operator cannot make the cluster
	// match the spec; its reason is the first problem's and its message
	// lists them all. Reasons: InvalidConfig (a spec, spec.config or pod
	// addition the broker or the operator refuses, or a broker that refused
	// its file), SecretNotFound, InvalidUsersSecret, AdminTokenInvalid,
	// VolumeShrinkRefused, VolumeExpansionFailed, ServiceMonitorUnavailable,
	// PrometheusRuleUnavailable, CertManagerUnavailable, ApplyFailed (the
	// apiserver refused a child object), RollStalled (a cluster member did
	// not come back caught up during a rolling upgrade) and
	// ClusterSecretInvalid.
	ConditionDegraded = "Degraded"
	// ConditionConfigApplied is True when every running broker reports, on
	// its admin endpoint (GET /v1/status), the configuration generation the
	// operator rendered for the current metadata.generation. It is False
	// with reason ConfigRefused when a broker refused that configuration
	// (it then runs on with the previous one); the message is the broker's.
	// The contents of the mounted Secrets (users file, TLS certificate) have
	// no generation: a users file the broker refuses makes it False
	// (ConfigRefused), but one it accepts leaves it as it was.
	ConditionConfigApplied = "ConfigApplied"
	// ConditionStoragePressure is True when a running broker reports its
	// store at 95% of its budget or more (queues.maxStoreBytes, 90% of
	// spec.persistence.size) or its volume below the free space reserve:
	// new messages for offline sessions are then refused by the overflow
	// policy until sessions drain. Grow the volume or drain the queues.
	// Unknown when no broker can be asked.
	ConditionStoragePressure = "StoragePressure"
)

// Condition reasons (status.conditions[].reason). Every reason is also used
// as the reason of the Event that accompanies it, where there is one.
const (
	ReasonAllReplicasReady   = "AllReplicasReady"
	ReasonReplicasNotReady   = "ReplicasNotReady"
	ReasonStatefulSetMissing = "StatefulSetMissing"
	ReasonRollingOut         = "RollingOut"
	ReasonRolloutComplete    = "RolloutComplete"
	ReasonPaused             = "Paused"
	ReasonAsExpected         = "AsExpected"
	ReasonInvalidConfig      = "InvalidConfig"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonShrinkRefused      = "VolumeShrinkRefused"
	ReasonExpansionFailed    = "VolumeExpansionFailed"
	ReasonExpanding          = "VolumeExpanding"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonConfigCurrent      = "ConfigCurrent"
	ReasonConfigPending      = "ConfigPending"
	ReasonBrokerUnreachable  = "BrokerUnreachable"
	ReasonNoRunningBrokers   = "NoRunningBrokers"
	// ReasonConfigRefused: a broker refused the current configuration (or
	// the users file it names) and runs on with the previous one; the
	// message carries the broker's error.
	ReasonConfigRefused = "ConfigRefused"
	// ReasonInvalidUsers: a line of the users Secret is not
	// "username:bcrypt-hash"; the message names the line, never its hash.
	ReasonInvalidUsers = "InvalidUsersSecret"
	// ReasonServiceMonitorUnavailable: spec.metrics.serviceMonitor.enabled
	// is true but the ServiceMonitor CRD (monitoring.coreos.com/v1) is not
	// installed.
	ReasonServiceMonitorUnavailable = "ServiceMonitorUnavailable"
	// ReasonPrometheusRuleUnavailable: spec.metrics.prometheusRule.enabled
	// is true but the PrometheusRule CRD (monitoring.coreos.com/v1) is not
	// installed.
	ReasonPrometheusRuleUnavailable = "PrometheusRuleUnavailable"
	// ReasonCertManagerUnavailable: spec.listeners.tls.issuerRef is set but
	// cert-manager's Certificate CRD (cert-manager.io/v1) is not installed.
	ReasonCertManagerUnavailable = "CertManagerUnavailable"
	// ReasonAdminTokenInvalid: the admin token Secret
	// (<name>-admin-token) holds no usable token, or another object
	// controls it; the operator cannot ask the brokers for their status.
	ReasonAdminTokenInvalid = "AdminTokenInvalid"
	// ReasonStorageBudgetReached: a broker's store is at its budget or its
	// volume below the free space reserve (StoragePressure True).
	ReasonStorageBudgetReached = "StorageBudgetReached"
	// ReasonStorageWithinBudget: every broker's store is within its budget.
	ReasonStorageWithinBudget = "StorageWithinBudget"
	// ReasonNoLeader: no member of a cluster reports a leader that serves
	// (an election is under way, or a majority of the members is down).
	ReasonNoLeader = "NoLeader"
	// ReasonQuorumUnhealthy: a leader serves but fewer than a majority of
	// the voters are caught up with it.
	ReasonQuorumUnhealthy = "QuorumUnhealthy"
	// ReasonLeaderServing: a leader serves and a quorum is healthy.
	ReasonLeaderServing = "LeaderServing"
	// ReasonRollStalled: a cluster member deleted by a rolling upgrade did
	// not come back, on the new pod template and caught up, in time; the
	// roll stops until it does (or the spec changes).
	ReasonRollStalled = "RollStalled"
	// ReasonMemberRefused: the leader refuses to add a member because the
	// member's build does not read the cluster's log entry format (the
	// member runs an older build than the cluster agreed on); it is asked
	// again every pass, and added once it runs a build that reads it.
	ReasonMemberRefused = "MemberRefused"
	// ReasonClusterSecretInvalid: the cluster secret Secret
	// (<name>-cluster-secret) holds no usable secret, or another object
	// controls it.
	ReasonClusterSecretInvalid = "ClusterSecretInvalid"
	// ReasonScaling: members are being added to or removed from a cluster
	// through its leader.
	ReasonScaling = "Scaling"
)

// Annotations a user sets on an MQTTBroker.
const (
	// PausedAnnotation, set to "true", stops the operator from changing the
	// broker's child objects; the Progressing condition says it is paused.
	// Remove it (or set any other value) to resume.
	PausedAnnotation = "mqtt.bollard.io/paused"
	// RestartedAtAnnotation is copied onto the pod template, so changing its
	// value (conventionally to the current time, RFC 3339) rolls the broker
	// pods on demand, like `kubectl rollout restart`.
	RestartedAtAnnotation = "mqtt.bollard.io/restartedAt"
)

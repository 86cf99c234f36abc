// Package adminapi defines the JSON bodies of the admin API's cluster
// endpoints (/v1/cluster and below): the broker serves them (broker/host,
// from broker/cluster and broker/replica) and the operator calls them
// (controllers). One definition for both sides, so a renamed or added
// field cannot drift between them.
//
// It is a leaf package: it imports nothing of Bollard, so the operator
// gets the types without pulling in the broker's Raft and storage
// dependencies.
package adminapi

// Role is a member's part in the cluster, as GET /v1/cluster reports it.
type Role string

// Roles.
const (
	RoleLeader    Role = "leader"
	RoleFollower  Role = "follower"
	RoleCandidate Role = "candidate"
	RoleShutdown  Role = "shutdown"
)

// ClusterMember is one member as the cluster configuration has it.
type ClusterMember struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raftAddress"`
	// ClientAddress is where the member serves MQTT clients, as the
	// answering member knows it (its configured members and those it
	// added); empty when it does not.
	ClientAddress string `json:"clientAddress,omitempty"`
	Voter         bool   `json:"voter"`
	// Leader's view of a follower (only on the leader): once heard, the
	// highest log index it holds, its lag behind the leader's last index,
	// and how long ago it last answered; until then, no index or lag (they
	// are unknown), and LastContactMilli is how long this member has led,
	// the least time the follower has been silent.
	MatchIndex       *uint64 `json:"matchIndex,omitempty"`
	Lag              *uint64 `json:"lag,omitempty"`
	LastContactMilli *int64  `json:"lastContactMs,omitempty"`
}

// ClusterStatus is a member's view of the cluster: the body of
// GET /v1/cluster and the "cluster" section of /v1/status.
type ClusterStatus struct {
	ID                  string `json:"id"`
	Role                Role   `json:"role"`
	Serving             bool   `json:"serving"`
	Term                uint64 `json:"term"`
	LeaderID            string `json:"leader,omitempty"`
	LeaderClientAddress string `json:"leaderClientAddress,omitempty"`
	LastLogIndex        uint64 `json:"lastLogIndex"`
	// LastLogTerm is the term of the last entry: of two members, the one
	// with the higher (LastLogTerm, LastLogIndex) holds the more recent log
	// (Raft's election rule; the survivor to keep after a lost quorum).
	LastLogTerm uint64 `json:"lastLogTerm"`
	CommitIndex uint64 `json:"commitIndex"`
	// AppliedIndex is Raft's: the last entry handed to the state machine,
	// which writes it to the store right after (Pebble, unsynced). Use the
	// leader's per-member Lag to tell whether a member has caught up.
	AppliedIndex       uint64          `json:"appliedIndex"`
	LastSnapshotIndex  uint64          `json:"lastSnapshotIndex"`
	Members            []ClusterMember `json:"members"`
	RefusedConnections int64           `json:"refusedReplicationConnections"`
	// EntryFormat is the log entry format the cluster agreed on, as this
	// member applied it (the leader writes entries in it); ReadsFormat is
	// the highest its build reads. A leader raises EntryFormat once every
	// member reads more (docs/operations.md, upgrades).
	EntryFormat int `json:"entryFormat"`
	ReadsFormat int `json:"readsFormat"`
	// Log counts what this member wrote to its Raft log since it started.
	Log ClusterLog `json:"log"`
}

// ClusterLog counts a member's Raft log writes since the process started.
type ClusterLog struct {
	// Appends are the log's appends (each synced once), WrittenEntries
	// and WrittenBytes the entries they held and their encoded size.
	Appends        uint64 `json:"appends"`
	WrittenEntries uint64 `json:"writtenEntries"`
	WrittenBytes   uint64 `json:"writtenBytes"`
	// SegmentsFromSpare are segment files that were a spare filled and
	// synced ahead of time; SegmentsFilledInPlace were filled by the
	// append that needed them (the first one, or spares not keeping up:
	// that append waited for a whole segment to be written).
	SegmentsFromSpare     uint64 `json:"segmentsFromSpare"`
	SegmentsFilledInPlace uint64 `json:"segmentsFilledInPlace"`
	// TruncatedHead are entries removed after snapshots; TruncatedTail
	// entries removed from the end because a new leader's log replaced
	// them (entries never committed).
	TruncatedHead uint64 `json:"truncatedHead"`
	TruncatedTail uint64 `json:"truncatedTail"`
}

// AddMember is the body of POST /v1/cluster/members: the member to add
// (checked as the config file's cluster.members entries are).
type AddMember struct {
	ID            string `json:"id"`
	RaftAddress   string `json:"raftAddress"`
	ClientAddress string `json:"clientAddress"`
}

// Error is the body of every admin answer other than 200: what went
// wrong; on a member that does not lead, which member does (Leader), so
// the caller can ask there; and, for a refusal that asking again will not
// change, why (Reason).
type Error struct {
	Error  string `json:"error"`
	Leader string `json:"leader,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ReasonMemberFormat is Error.Reason of POST /v1/cluster/members (409)
// for a member whose build does not read the cluster's log entry format:
// it must run a newer build before it can be added.
const ReasonMemberFormat = "member_format"

// LeadershipTransfer is the optional body of POST
// /v1/cluster/leadership-transfer: To names the member to hand leadership
// to; empty (or no body) means the most up-to-date follower.
type LeadershipTransfer struct {
	To string `json:"to,omitempty"`
}

// Readiness handover roles (PUT /v1/cluster/handover): see
// broker/replica's HandoverRole.
const (
	HandoverNone        = "none"
	HandoverSuccessor   = "successor"
	HandoverPredecessor = "predecessor"
)

// HandoverRequest is the body of PUT /v1/cluster/handover: a role and how
// long it lasts (0: the member's default; the member bounds it).
type HandoverRequest struct {
	Role     string `json:"role"`
	TTLMilli int64  `json:"ttlMs"`
}

// Handover is the answer of the handover endpoints: the member's role,
// how long it still lasts, and the connections it holds and held.
type Handover struct {
	Role           string `json:"role"`
	RemainingMilli int64  `json:"remainingMs"`
	Held           int64  `json:"heldConnections"`
	Served         uint64 `json:"heldServed"`
	TimedOut       uint64 `json:"heldTimedOut"`
	OverLimit      uint64 `json:"heldOverLimit"`
	Abandoned      uint64 `json:"heldAbandoned"`
}

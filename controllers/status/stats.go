package status

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// StatsReport is the part of a broker's GET /v1/status answer that goes
// into status.stats. A nil field is one the broker did not report (an
// older broker): it stays out of the status rather than counting as 0.
type StatsReport struct {
	// ReadAt is when the answer was read.
	ReadAt time.Time
	// SessionsOnline and SessionsOffline count the broker's sessions.
	SessionsOnline, SessionsOffline int64
	QueuedBytes                     *int64
	// FullestQueue is the fill of the fullest queue (1: at its limit).
	FullestQueue *float64
	// TopQueues are the broker's deepest queues.
	TopQueues []QueueReport
	// RecentDrops are the drops of the broker's recent window.
	RecentDrops *DropReport
}

// QueueReport is one of a broker's deepest queues.
type QueueReport struct {
	ClientID        string
	Messages, Bytes int64
	Policy          string
}

// DropReport is a broker's recent drops by reason.
type DropReport struct {
	WindowSeconds int64
	ByReason      map[string]uint64
}

// Bounds on what a broker's answer may put into the status: the status is
// stored in etcd and shown by kubectl, and a broker is not trusted to keep
// it small (an MQTT client ID may be 64 KiB).
const (
	MaxTopQueues   = 10
	maxIDBytes     = 256
	maxDropReasons = 16
	maxReasonBytes = 64
)

// Stats totals the reports of the brokers that answered with figures
// (not NoFigures) into status.stats, or returns nil when none did (the
// caller then keeps the last figures). A figure that any answering broker
// did not report is left out: a partial total would say more than is
// known.
func Stats(rs []BrokerReport) *v1alpha1.BrokerStats {
	var ok []BrokerReport
	for _, r := range sortedReports(rs) {
		if r.Err == nil && !r.NoFigures {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	s := &v1alpha1.BrokerStats{Pods: int32(len(ok)), ObservedAt: metav1.NewTime(ok[0].Stats.ReadAt)}
	var online, offline, queued int64
	for _, r := range ok {
		if r.Stats.ReadAt.Before(s.ObservedAt.Time) {
			s.ObservedAt = metav1.NewTime(r.Stats.ReadAt)
		}
		online = satAdd(online, r.Stats.SessionsOnline)
		offline = satAdd(offline, r.Stats.SessionsOffline)
		queued = satAdd(queued, r.QueuedMessages)
	}
	s.SessionsOnline, s.SessionsOffline, s.QueuedMessages = &online, &offline, &queued
	s.QueuedBytes = sumAll(ok, func(r BrokerReport) *int64 { return r.Stats.QueuedBytes })
	s.FullestQueuePercent = fullest(ok)
	s.Storage = fullestStore(ok)
	s.Drops = drops(ok)
	s.TopQueues = topQueues(ok)
	return s
}

// KeepObservedAt gives next the observedAt of prev when their figures are
// the same and prev was read less than period before next: a steady broker
// then costs one status write per period, not one per question, and
// observedAt is at most period old while the brokers answer.
func KeepObservedAt(prev, next *v1alpha1.BrokerStats, period time.Duration) {
	if prev == nil || next == nil || next.ObservedAt.Sub(prev.ObservedAt.Time) >= period || next.ObservedAt.Before(&prev.ObservedAt) {
		return
	}
	at := next.ObservedAt
	next.ObservedAt = prev.ObservedAt
	if !equality.Semantic.DeepEqual(prev, next) {
		next.ObservedAt = at
	}
}

// sumAll totals a figure every report has, or returns nil.
func sumAll(rs []BrokerReport, f func(BrokerReport) *int64) *int64 {
	var sum int64
	for _, r := range rs {
		v := f(r)
		if v == nil {
			return nil
		}
		sum = satAdd(sum, *v)
	}
	return &sum
}

func fullest(rs []BrokerReport) *int32 {
	m := 0.0
	for _, r := range rs {
		if r.Stats.FullestQueue == nil {
			return nil
		}
		m = max(m, *r.Stats.FullestQueue)
	}
	if math.IsNaN(m) {
		return nil
	}
	return ptr.To(int32(math.Round(min(m, 100) * 100))) // a fill above 100x lowered limits reads 10000%
}

// fullestStore is the storage of the pod whose store is fullest: by
// fraction of its budget, or by bytes used where there is no budget.
func fullestStore(rs []BrokerReport) *v1alpha1.StorageStats {
	var best *StorageReport
	for i := range rs {
		st := &rs[i].Storage
		if !st.Reported {
			continue
		}
		if best == nil || fuller(*st, *best) {
			best = st
		}
	}
	if best == nil {
		return nil
	}
	out := &v1alpha1.StorageStats{UsedBytes: best.Used, BudgetBytes: best.Budget, Usage: Usage(best.Used, best.Budget)}
	if best.VolumeFree > 0 {
		out.VolumeFreeBytes = ptr.To(best.VolumeFree)
	}
	return out
}

func fuller(a, b StorageReport) bool {
	if a.Budget > 0 && b.Budget > 0 {
		return float64(a.Used)/float64(a.Budget) > float64(b.Used)/float64(b.Budget)
	}
	if (a.Budget > 0) != (b.Budget > 0) {
		return a.Budget > 0 // a store with a budget can reach it
	}
	return a.Used > b.Used
}

// Usage is the Store printer column: "41% of 900Mi", or "368Mi" without
// a budget.
func Usage(used, budget int64) string {
	if budget <= 0 {
		return humanBytes(used)
	}
	return fmt.Sprintf("%d%% of %s", int64(math.Floor(float64(used)*100/float64(budget))), humanBytes(budget))
}

// humanBytes writes n in binary units as kubectl users read them: 512,
// 12Ki, 900Mi, 1.5Gi.
func humanBytes(n int64) string {
	units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 || v >= 10 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f%s", math.Floor(v), units[i])
	}
	return fmt.Sprintf("%.1f%s", math.Floor(v*10)/10, units[i])
}

func drops(rs []BrokerReport) *v1alpha1.DropStats {
	out := &v1alpha1.DropStats{}
	by := map[string]int64{}
	for _, r := range rs {
		d := r.Stats.RecentDrops
		if d == nil {
			return nil
		}
		out.WindowSeconds = max(out.WindowSeconds, d.WindowSeconds)
		for reason, n := range d.ByReason {
			c := int64(min(n, math.MaxInt64))
			out.Total = satAdd(out.Total, c)
			if c > 0 && reason != "" && len(reason) <= maxReasonBytes && utf8.ValidString(reason) {
				by[reason] = satAdd(by[reason], c)
			}
		}
	}
	reasons := slices.SortedFunc(maps.Keys(by), func(a, b string) int {
		if by[a] != by[b] {
			return int(min(max(by[b]-by[a], -1), 1))
		}
		return strings.Compare(a, b)
	})
	if len(reasons) > maxDropReasons {
		reasons = reasons[:maxDropReasons]
	}
	if len(reasons) > 0 {
		out.ByReason = make(map[string]int64, len(reasons))
		for _, r := range reasons {
			out.ByReason[r] = by[r]
		}
	}
	return out
}

// satAdd adds two counts, taking a negative one as 0 and stopping at the
// largest int64 rather than wrapping to a negative count.
func satAdd(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// topQueues merges the brokers' deepest queues: a client ID once (its
// deepest queue), deepest first, at most MaxTopQueues.
func topQueues(rs []BrokerReport) []v1alpha1.QueueStats {
	deepest := map[string]QueueReport{}
	for _, r := range rs {
		if r.Stats.TopQueues == nil {
			return nil
		}
		for _, q := range r.Stats.TopQueues {
			if cur, ok := deepest[q.ClientID]; !ok || deeper(q, cur) {
				deepest[q.ClientID] = q
			}
		}
	}
	all := slices.SortedFunc(maps.Values(deepest), func(a, b QueueReport) int {
		if deeper(a, b) {
			return -1
		}
		return 1
	})
	var out []v1alpha1.QueueStats
	for _, q := range all[:min(len(all), MaxTopQueues)] {
		out = append(out, v1alpha1.QueueStats{ClientID: cut(q.ClientID, maxIDBytes), Messages: q.Messages, Bytes: q.Bytes,
			Policy: cut(q.Policy, maxIDBytes)})
	}
	return out
}

func deeper(a, b QueueReport) bool {
	if a.Messages != b.Messages {
		return a.Messages > b.Messages
	}
	if a.Bytes != b.Bytes {
		return a.Bytes > b.Bytes
	}
	return a.ClientID < b.ClientID
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut
// with "...".
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

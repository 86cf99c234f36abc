package router

// maxSettlement bounds the subscribers a Settlement keeps its index for
// between calls.
const maxSettlement = 4096

// Settlement settles the queue entries of many fan-outs whose batches had
// the same outcome (one group commit) with one SettleAll per subscriber
// instead of one Settle per entry: a session's lock is taken once per
// group, not once per message. Its zero value is ready; reuse it. It is not
// safe for concurrent use.
type Settlement struct {
	idx    map[Subscriber]int // subscriber -> index in groups
	groups []settleGroup
}

type settleGroup struct {
	s    Subscriber
	seqs []uint64
}

// Settle settles the entries of fs: each subscriber's in the order of fs
// (the order their Seqs were assigned). The fan-outs' own Settle must
// still be called, in order; it then only applies their retained changes.
func (st *Settlement) Settle(fs []*Fanout, ok bool) {
	if st.idx == nil {
		st.idx = make(map[Subscriber]int)
	}
	for _, f := range fs {
		for i, e := range f.settles {
			g := st.group(i, e.s)
			g.seqs = append(g.seqs, e.seq)
		}
		f.settles = f.settles[:0]
	}
	for i := range st.groups {
		g := &st.groups[i]
		g.s.SettleAll(g.seqs, ok)
		g.s, g.seqs = nil, g.seqs[:0]
	}
	st.groups = st.groups[:0]
	if len(st.idx) > maxSettlement {
		st.idx = nil
	} else {
		clear(st.idx)
	}
}

// group returns s's group. Fan-outs of one topic list their subscribers
// in the same order, so the group at the entry's position i is tried
// before the index.
func (st *Settlement) group(i int, s Subscriber) *settleGroup {
	if i < len(st.groups) && st.groups[i].s == s {
		return &st.groups[i]
	}
	if j, ok := st.idx[s]; ok {
		return &st.groups[j]
	}
	st.idx[s] = len(st.groups)
	if len(st.groups) < cap(st.groups) {
		st.groups = st.groups[:len(st.groups)+1]
		st.groups[len(st.groups)-1].s = s
	} else {
		st.groups = append(st.groups, settleGroup{s: s})
	}
	return &st.groups[len(st.groups)-1]
}

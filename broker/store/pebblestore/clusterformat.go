package pebblestore

// keyClusterFormat holds the format of the replicated log's entries the
// cluster agreed on (one byte; see ApplyReplicatedFormat), absent until a
// replicated entry raised it above 1. It lives in the store so that it
// survives restarts and travels in snapshots (Pebble checkpoints); a
// build that predates it ignores the key.
var keyClusterFormat = []byte("meta/clusterformat")

// ApplyReplicatedFormat applies entry index of a replicated log that
// raises the cluster's entry format to format, in one Pebble batch with
// the applied index (as ApplyReplicatedTerm does for a batch). A format
// never goes down: a lower or equal one changes nothing but the applied
// index. An entry at or below AppliedIndex is skipped (a replay).
func (s *Store) ApplyReplicatedFormat(index, term uint64, format uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if apply, err := s.applyGate(index); !apply {
		return err
	}
	s.ops.Add(1)
	defer s.ops.Done()
	pb := s.db.NewBatch()
	next := max(s.clusterFormat, format)
	if err := pb.Set(keyClusterFormat, []byte{next}, nil); err != nil {
		return s.applyFailed(nil, pb, err)
	}
	if err := pb.Set(keyApplied, appliedValue(index, term), nil); err != nil {
		return s.applyFailed(nil, pb, err)
	}
	if err := s.write(pb, false); err != nil {
		return s.applyFailed(nil, pb, err)
	}
	s.applied, s.appliedTerm, s.clusterFormat = index, term, next
	s.dirty.Store(true)
	return pb.Close()
}

// ClusterFormat is the replicated entry format recorded by the last
// ApplyReplicatedFormat (1 when none was: every build reads format 1).
func (s *Store) ClusterFormat() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.clusterFormat, 1)
}

func (s *Store) loadClusterFormat() error {
	return s.readMeta(keyClusterFormat, func(v []byte) error {
		if len(v) != 1 || v[0] == 0 {
			return corrupt(keyClusterFormat, "malformed cluster format")
		}
		s.clusterFormat = v[0]
		return nil
	})
}

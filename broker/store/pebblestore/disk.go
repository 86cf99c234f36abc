package pebblestore

import (
	"errors"
	"fmt"

	"github.com/bollard-io/bollard/broker/store"
)

var _ store.DiskReporter = (*Store)(nil)

// errClosed is returned by DiskUsage after Close.
var errClosed = errors.New("pebblestore: closed")

// DiskUsage reports what the store occupies on its volume, from Pebble's own
// metrics (DiskSpaceUsage: live and obsolete tables, WAL, manifest, options,
// compactions in progress) and the volume's free space (statfs).
func (s *Store) DiskUsage() (store.DiskUsage, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.DiskUsage{}, errClosed
	}
	m := s.db.Metrics()
	s.mu.Unlock()
	u := store.DiskUsage{Used: int64(m.DiskSpaceUsage()), CompactionDebt: int64(m.Compact.EstimatedDebt)}
	free, size, err := volumeSpace(s.dir)
	if err != nil {
		return u, fmt.Errorf("pebblestore: free space of %s: %w", s.dir, err)
	}
	u.VolumeFree, u.VolumeSize = free, size
	return u, nil
}

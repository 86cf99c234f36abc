package engine

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/lograte"
)

// storeErrLogEvery is how often a failed store commit of one kind (its
// message) is logged at most. A store that fails (an I/O error, a
// cluster member that lost its majority) fails every commit that
// follows, one or more per publish.
const storeErrLogEvery = 10 * time.Second

// storeErrors counts the store commits that failed and logs them, the
// first of each kind at once, then one per storeErrLogEvery with the
// number left out.
type storeErrors struct {
	n   atomic.Uint64
	lim lograte.Limiter
}

func newStoreErrors() *storeErrors {
	return &storeErrors{lim: lograte.Limiter{Every: storeErrLogEvery}}
}

// add counts a failed commit and logs it as msg with err and attrs.
func (e *storeErrors) add(log *slog.Logger, now time.Time, msg string, err error, attrs ...any) {
	e.n.Add(1)
	if ok, skipped := e.lim.Allow(msg, now); ok {
		log.Error(msg, append([]any{"err", err, "unlogged_before", skipped}, attrs...)...)
	}
}

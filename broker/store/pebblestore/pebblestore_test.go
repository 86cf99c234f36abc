package pebblestore

import (
	"io"
	"log/slog"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts Options
	}{{"Sync", Options{}}, {"Interval", Options{Durability: Interval}}} {
		t.Run(mode.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store { return openT(t, t.TempDir(), mode.opts) })
			storetest.RunDurable(t, func(t *testing.T, dir string) store.Store { return openT(t, dir, mode.opts) })
		})
	}
}

// Package poll waits in tests for a condition that becomes true eventually:
// it asks again at a fixed interval until a deadline, never with a bare
// sleep. It is the one polling helper of the module's tests.
//
// It imports nothing of Bollard's and nothing of Kubernetes, so the broker's
// tests may use it (depguard keeps it so).
package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ErrNotYet is the error a boolean condition reports while false.
var ErrNotYet = errors.New("poll: condition not met yet")

// Until calls cond at once and then every interval until it returns nil,
// and then returns nil. When timeout passes or ctx ends first, it returns
// cond's last error (which is never nil, since cond has failed).
func Until(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

// Bool turns a boolean condition into one for Until: false is ErrNotYet.
func Bool(cond func() bool) func(context.Context) error {
	return func(context.Context) error {
		if cond() {
			return nil
		}
		return ErrNotYet
	}
}

// Check turns a condition that reports (done, err) into one for Until:
// an error or false keeps polling, and the error is what Until returns
// if time runs out.
func Check(cond func(context.Context) (bool, error)) func(context.Context) error {
	return func(ctx context.Context) error {
		ok, err := cond(ctx)
		switch {
		case err != nil:
			return err
		case !ok:
			return ErrNotYet
		}
		return nil
	}
}

// Wait polls cond every interval and fails the test with
// "timed out after <timeout> waiting for <what>" when timeout passes first.
func Wait(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	if Until(context.Background(), timeout, interval, Bool(cond)) != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

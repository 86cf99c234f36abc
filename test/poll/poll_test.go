package poll_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/poll"
)

func TestUntilReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	err := poll.Until(context.Background(), 10*time.Second, time.Millisecond, func(context.Context) error {
		calls++
		if calls < 3 {
			return poll.ErrNotYet
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestUntilReturnsTheLastErrorAtTheDeadline(t *testing.T) {
	last := errors.New("still 2 replicas")
	start := time.Now()
	err := poll.Until(context.Background(), 50*time.Millisecond, 5*time.Millisecond, func(context.Context) error { return last })
	if !errors.Is(err, last) {
		t.Errorf("err = %v, want the condition's last error", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("returned after %s, before the timeout", waited)
	}
}

func TestUntilStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := poll.Until(ctx, time.Hour, time.Millisecond, poll.Bool(func() bool { return false }))
	if !errors.Is(err, poll.ErrNotYet) {
		t.Errorf("err = %v, want ErrNotYet", err)
	}
}

func TestCheck(t *testing.T) {
	boom := errors.New("boom")
	for name, tc := range map[string]struct {
		ok   bool
		err  error
		want error
	}{
		"done":    {ok: true},
		"not yet": {want: poll.ErrNotYet},
		"error":   {err: boom, want: boom},
	} {
		t.Run(name, func(t *testing.T) {
			got := poll.Check(func(context.Context) (bool, error) { return tc.ok, tc.err })(context.Background())
			if !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

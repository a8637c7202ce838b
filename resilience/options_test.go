package resilience_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// TestBadRetryOptionsAreErrors: a Retry option that cannot work is an error
// naming it, before any attempt.
func TestBadRetryOptionsAreErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  resilience.RetryOption
		want string
	}{
		{resilience.OnRetry(nil), "OnRetry(nil)"},
		{resilience.WithGuards(nil), "guards[0]"},
		{resilience.WithAdaptive(nil), "WithAdaptive(nil)"},
		{nil, "option 0 is nil"},
	} {
		calls := 0
		_, err := resilience.Retry(context.Background(), resilience.DefaultRetryConfig(), func(context.Context) (int, error) {
			calls++
			return 0, nil
		}, tc.opt)
		if !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) || calls != 0 {
			t.Errorf("Retry with a bad option: %v after %d calls, want an error naming %q before any call", err, calls, tc.want)
		}
	}
	if _, err := resilience.NewMetricsTracer(resilience.WithRegisterer(nil)); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("NewMetricsTracer(WithRegisterer(nil)) = %v, want ErrInvalidConfig", err)
	}
}

// BenchmarkIsPermanent measures IsPermanent (errors.Is) on the failure path:
// a transient dial error joined with context, as a failed round sees it, and a
// permanent one wrapped twice.
func BenchmarkIsPermanent(b *testing.B) {
	transient := errors.Join(context.DeadlineExceeded, errors.New("dial tcp 127.0.0.1:4001: connection refused"))
	permanent := errors.Join(errors.New("round"), resilience.Permanent(errors.New("peer id mismatch")))
	b.Run("transient", func(b *testing.B) {
		for b.Loop() {
			if resilience.IsPermanent(transient) {
				b.Fatal("transient error called permanent")
			}
		}
	})
	b.Run("permanent", func(b *testing.B) {
		for b.Loop() {
			if !resilience.IsPermanent(permanent) {
				b.Fatal("permanent error missed")
			}
		}
	})
}

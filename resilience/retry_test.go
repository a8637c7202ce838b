package resilience_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func fastConfig(attempts uint32) resilience.RetryConfig {
	return resilience.RetryConfig{MaxAttempts: attempts, InitialDelay: 10 * time.Millisecond, MaxDelay: time.Second, BackoffMultiplier: 2, JitterFactor: 0.1, ResetOnSuccess: true}
}

// failing returns an op that fails n times with err, then succeeds with "success".
func failing(n int32, err error, calls *atomic.Int32) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		if calls.Add(1) <= n {
			return "", err
		}
		return "success", nil
	}
}

// The seed's test_retry_helper: fails twice, succeeds on the third call.
func TestRetryHelper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		got, err := resilience.Retry(t.Context(), fastConfig(3), failing(2, errTest, &calls))
		if err != nil || got != "success" {
			t.Fatalf("got %q, %v", got, err)
		}
		if calls.Load() != 3 {
			t.Fatalf("%d calls, want 3", calls.Load())
		}
	})
}

func TestRetryWaitsTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := fastConfig(4)
		cfg.JitterFactor = 0
		var calls atomic.Int32
		var delays []time.Duration
		start := time.Now()
		_, err := resilience.Retry(t.Context(), cfg, failing(3, errTest, &calls),
			resilience.OnRetry(func(attempt uint32, err error, d time.Duration) {
				if attempt != uint32(len(delays)+1) || !errors.Is(err, errTest) {
					t.Errorf("OnRetry(%d, %v)", attempt, err)
				}
				delays = append(delays, d)
			}))
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
		if len(delays) != 3 || delays[0] != want[0] || delays[1] != want[1] || delays[2] != want[2] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
		if elapsed := time.Since(start); elapsed != 70*time.Millisecond {
			t.Fatalf("virtual time elapsed %v, want 70ms", elapsed)
		}
	})
}

func TestRetryExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		_, err := resilience.Retry(t.Context(), fastConfig(3), failing(100, errTest, &calls))
		if !errors.Is(err, resilience.ErrExhausted) || !errors.Is(err, errTest) {
			t.Fatalf("err %v does not match ErrExhausted and the op error", err)
		}
		if calls.Load() != 3 {
			t.Fatalf("%d calls, want 3", calls.Load())
		}
	})
}

func TestRetryPermanentStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		_, err := resilience.Retry(t.Context(), fastConfig(5), failing(100, resilience.Permanent(errTest), &calls))
		if !errors.Is(err, errTest) || !resilience.IsPermanent(err) || errors.Is(err, resilience.ErrExhausted) {
			t.Fatalf("err %v", err)
		}
		if calls.Load() != 1 {
			t.Fatalf("%d calls, want 1", calls.Load())
		}
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		start := time.Now()
		got, err := resilience.Retry(t.Context(), fastConfig(3), failing(1, resilience.RetryAfter(7*time.Second, errTest), &calls))
		if err != nil || got != "success" {
			t.Fatalf("got %q, %v", got, err)
		}
		if elapsed := time.Since(start); elapsed != 7*time.Second {
			t.Fatalf("waited %v, want the requested 7s", elapsed)
		}
	})
}

func TestRetryCancelMidBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		cfg := fastConfig(0)
		cfg.InitialDelay, cfg.MaxDelay = time.Hour, time.Hour
		var calls atomic.Int32
		done := make(chan error)
		start := time.Now()
		go func() {
			_, err := resilience.Retry(ctx, cfg, failing(100, errTest, &calls))
			done <- err
		}()
		time.Sleep(time.Minute)
		cancel(cause)
		err := <-done
		if !errors.Is(err, cause) {
			t.Fatalf("err %v does not carry the cause", err)
		}
		if elapsed := time.Since(start); elapsed != time.Minute {
			t.Fatalf("returned after %v, want at once after cancel (1m)", elapsed)
		}
		if calls.Load() != 1 {
			t.Fatalf("%d calls, want 1", calls.Load())
		}
	})
}

// A tracker whose caller gave up during the backoff wait is not left Retrying
// (an active state that never expires).
func TestRetryTrackedCancelDuringWaitLeavesIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newManager(t, resilience.WithDefaultConfig(fastConfig(0)))
		ctx, cancel := context.WithTimeout(t.Context(), 25*time.Millisecond)
		defer cancel()
		var calls atomic.Int32
		_, err := resilience.RetryTracked(ctx, m.Tracked("p"), failing(100, errTest, &calls))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		tr, _ := m.Get("p")
		if tr.State != resilience.Idle || tr.ConsecutiveFailures == 0 {
			t.Fatalf("tracker after giving up: %+v", tr)
		}
	})
}

func TestRetryCanceledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls atomic.Int32
	_, err := resilience.Retry(ctx, fastConfig(3), failing(0, nil, &calls))
	if !errors.Is(err, context.Canceled) || calls.Load() != 0 {
		t.Fatalf("err %v, calls %d", err, calls.Load())
	}
}

func TestRetryInvalidConfig(t *testing.T) {
	var calls atomic.Int32
	cfg := fastConfig(3)
	cfg.BackoffMultiplier = 0
	if _, err := resilience.Retry(t.Context(), cfg, failing(0, nil, &calls)); !errors.Is(err, resilience.ErrInvalidConfig) || calls.Load() != 0 {
		t.Fatalf("err %v, calls %d", err, calls.Load())
	}
}

// Unlimited attempts go on until ctx ends.
func TestRetryUnlimitedUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		var calls atomic.Int32
		_, err := resilience.Retry(ctx, fastConfig(0), failing(1<<30, errTest, &calls))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		if calls.Load() < 500 { // 10 minutes at most 1s (+5%) apart
			t.Fatalf("only %d calls in 10 minutes", calls.Load())
		}
	})
}

func TestRetryTrackedRecordsEveryAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, fastConfig(5))
		tr.ConnectionID = "peer-123"
		var calls atomic.Int32
		if _, err := resilience.RetryTracked(t.Context(), tr, failing(2, errTest, &calls)); err != nil {
			t.Fatal(err)
		}
		if tr.State != resilience.Connected || tr.ConsecutiveFailures != 0 || tr.LastSuccess.IsZero() {
			t.Fatalf("tracker %+v", tr)
		}

		cfg := fastConfig(5)
		cfg.ResetOnSuccess = false
		tr = newTracker(t, cfg)
		calls.Store(0)
		_, err := resilience.RetryTracked(t.Context(), tr, failing(100, errTest, &calls))
		if !errors.Is(err, resilience.ErrExhausted) || tr.State != resilience.Exhausted || tr.AttemptCount != 5 || tr.ConsecutiveFailures != 5 {
			t.Fatalf("err %v tracker %+v", err, tr)
		}
	})
}

// A canceled attempt is not the peer's failure.
func TestRetryTrackedCancelIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newManager(t)
		ctx, cancel := context.WithCancel(t.Context())
		_, err := resilience.RetryTracked(ctx, m.Tracked("p"), func(ctx context.Context) (int, error) {
			cancel()
			return 0, ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		tr, _ := m.Get("p")
		if tr.State != resilience.Idle || tr.ConsecutiveFailures != 0 {
			t.Fatalf("tracker after cancel: %+v", tr)
		}
		if st := m.Stats(); st.TotalFailures != 0 || st.TotalAttempts != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

package resilience_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// refuseGuard refuses every attempt.
type refuseGuard struct{}

var errRefused = errors.New("refused")

func (refuseGuard) Before(context.Context, uint32) error { return errRefused }
func (refuseGuard) After(uint32, error)                  {}

// TestStoppedLoopLeavesOthersAttemptAlone: a retry loop that stops without an
// attempt of its own in flight (a guard refused its next attempt) must not end
// the attempt another caller has in flight on the same tracker. On the old
// code it called RecordCanceled, which ended the probe's attempt: the tracker
// showed Idle while the probe dialled.
func TestStoppedLoopLeavesOthersAttemptAlone(t *testing.T) {
	tr, err := resilience.NewConnectionTracker("peer", resilience.DefaultRetryConfig())
	if err != nil {
		t.Fatal(err)
	}
	tr.RecordAttempt() // a probe's attempt, in flight
	_, err = resilience.RetryTracked(context.Background(), tr, func(context.Context) (int, error) {
		t.Fatal("the guard refused: op must not run")
		return 0, nil
	}, resilience.WithGuards(refuseGuard{}))
	if !errors.Is(err, errRefused) {
		t.Fatalf("RetryTracked = %v, want the guard's error", err)
	}
	if tr.State != resilience.Connecting || tr.AttemptCount != 1 {
		t.Fatalf("tracker %v with %d attempts, want connecting with the probe's 1", tr.State, tr.AttemptCount)
	}
	tr.RecordFailure(errors.New("probe failed")) // the probe's attempt ends
	if tr.State != resilience.Retrying || tr.AttemptCount != 1 || tr.ConsecutiveFailures != 1 {
		t.Fatalf("after the probe failed: %v, %d attempts, %d failures; want retrying, 1, 1",
			tr.State, tr.AttemptCount, tr.ConsecutiveFailures)
	}
	tr.RecordStopped() // nothing scheduled any more
	if tr.State != resilience.Idle {
		t.Fatalf("RecordStopped left %v, want idle", tr.State)
	}
}

// TestAdaptiveStretchStaysWithinMaxDelay: while the network counts as down,
// adaptive backoff stretches delays, but never past the configured MaxDelay
// (on the old code bootstrap's 60 s cap became 180 s).
func TestAdaptiveStretchStaysWithinMaxDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, err := resilience.NewAdaptiveBackoff(resilience.WithAdaptiveWindow(2), resilience.WithAdaptiveThreshold(1),
			resilience.WithAdaptiveStretch(3))
		if err != nil {
			t.Fatal(err)
		}
		a.Record(false)
		a.Record(false)
		if !a.Down() {
			t.Fatal("two failures in a window of two: the network should count as down")
		}
		cfg := resilience.RetryConfig{MaxAttempts: 5, InitialDelay: 10 * time.Second, MaxDelay: 60 * time.Second,
			BackoffMultiplier: 2, JitterFactor: 0}
		var delays []time.Duration
		_, err = resilience.RetryTracked(context.Background(), mustTracker(t, cfg), func(context.Context) (int, error) {
			return 0, errors.New("down")
		}, resilience.WithAdaptive(a), resilience.OnRetry(func(_ uint32, _ error, d time.Duration) {
			delays = append(delays, d)
		}))
		if !errors.Is(err, resilience.ErrExhausted) {
			t.Fatalf("RetryTracked = %v, want exhausted", err)
		}
		want := []time.Duration{30 * time.Second, 60 * time.Second, 60 * time.Second, 60 * time.Second}
		if len(delays) != len(want) {
			t.Fatalf("delays %v, want %v", delays, want)
		}
		for i := range want {
			if delays[i] != want[i] {
				t.Errorf("delay %d = %v, want %v (stretched 3x, capped at MaxDelay)", i+1, delays[i], want[i])
			}
		}
	})
}

// TestWakeOnCutsTheWaitShort: a value on the WakeOn channel ends a wait between
// attempts at once; without one the loop waits the whole delay.
func TestWakeOnCutsTheWaitShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wake := make(chan struct{}, 1)
		cfg := resilience.RetryConfig{MaxAttempts: 3, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 1}
		var starts []time.Time
		go func() {
			synctest.Wait() // the loop waits out its first hour
			wake <- struct{}{}
		}()
		start := time.Now()
		_, err := resilience.RetryTracked(context.Background(), mustTracker(t, cfg), func(context.Context) (int, error) {
			starts = append(starts, time.Now())
			return 0, errors.New("down")
		}, resilience.WakeOn(wake))
		if !errors.Is(err, resilience.ErrExhausted) {
			t.Fatalf("RetryTracked = %v, want exhausted", err)
		}
		if len(starts) != 3 {
			t.Fatalf("%d attempts, want 3", len(starts))
		}
		if d := starts[1].Sub(start); d != 0 {
			t.Errorf("second attempt after %v, want at once (woken)", d)
		}
		if d := starts[2].Sub(starts[1]); d != time.Hour {
			t.Errorf("third attempt %v after the second, want the whole hour (no wake)", d)
		}
	})
}

func mustTracker(t *testing.T, cfg resilience.RetryConfig) *resilience.ConnectionTracker {
	t.Helper()
	tr, err := resilience.NewConnectionTracker("peer", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestPriorityGateRejectsUnknownPriority: a priority that is not one of the
// constants is an error naming it, not silently clamped.
func TestPriorityGateRejectsUnknownPriority(t *testing.T) {
	g, err := resilience.NewPriorityGate(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Acquire(context.Background(), resilience.Priority(9)); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("Acquire(Priority(9)) = %v, want ErrInvalidConfig", err)
	}
	if err := g.Acquire(context.Background(), resilience.PriorityKept); err != nil {
		t.Fatalf("Acquire(PriorityKept) = %v", err) // the one slot is still free
	}
	g.Release()
}

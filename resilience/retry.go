package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RetryOption adjusts one Retry or RetryTracked call. An invalid option makes
// the call fail at once with an error wrapping ErrInvalidConfig that names it.
type RetryOption func(*retrySettings) error

type retrySettings struct {
	onRetry  func(attempt uint32, err error, delay time.Duration)
	tracer   MetricsTracer
	guards   []Guard
	adaptive *AdaptiveBackoff
	wake     <-chan struct{}
}

// WakeOn makes a wait between attempts end early when wake delivers a value (or
// is closed): the next attempt then starts at once. A value sent while an
// attempt is running is seen at the next wait. A nil channel never wakes.
func WakeOn(wake <-chan struct{}) RetryOption {
	return func(s *retrySettings) error {
		s.wake = wake
		return nil
	}
}

// OnRetry calls fn after each failed attempt that will be retried, with the
// attempt number (1 = the first attempt), its error and the delay before the next
// attempt. fn runs on the retrying goroutine; keep it short.
// fn must not be nil.
func OnRetry(fn func(attempt uint32, err error, delay time.Duration)) RetryOption {
	return func(s *retrySettings) error {
		if fn == nil {
			return fmt.Errorf("%w: OnRetry(nil)", ErrInvalidConfig)
		}
		s.onRetry = fn
		return nil
	}
}

// WithRetryMetrics reports attempts and retries to t. Default: nil (off).
func WithRetryMetrics(t MetricsTracer) RetryOption {
	return func(s *retrySettings) error {
		s.tracer = t
		return nil
	}
}

// WithAdaptive lets a shared AdaptiveBackoff stretch the delays while the network
// is failing as a whole and cut a wait short when it recovers. It also records
// every attempt's outcome in a. a must not be nil.
func WithAdaptive(a *AdaptiveBackoff) RetryOption {
	return func(s *retrySettings) error {
		if a == nil {
			return fmt.Errorf("%w: WithAdaptive(nil)", ErrInvalidConfig)
		}
		s.adaptive = a
		return nil
	}
}

// Retry calls op until it succeeds, following cfg (the seed's with_retry):
//
//   - it returns op's result as soon as op succeeds;
//   - a Permanent error stops at once and is returned as is;
//   - RetryAfter(d, err) replaces the computed delay with d;
//   - when ctx ends, Retry returns promptly with context.Cause(ctx) (joined with the
//     last operation error, if any); op receives ctx and should honour it;
//   - after cfg.MaxAttempts failed attempts it returns an error matching both
//     ErrExhausted and the last operation error (errors.Is);
//   - a Guard (WithGuards) that refuses an attempt stops the loop with its error
//     (ErrCircuitOpen, ErrBudgetExhausted, ...) joined with the last operation error.
//
// With cfg.MaxAttempts = 0 Retry never gives up on its own: pass a ctx with a
// deadline or one you cancel, or it may run forever.
//
// An invalid cfg returns its Validate error without calling op.
func Retry[T any](ctx context.Context, cfg RetryConfig, op func(context.Context) (T, error), opts ...RetryOption) (T, error) {
	if err := cfg.Validate(); err != nil {
		var zero T
		return zero, err
	}
	return RetryTracked(ctx, &backoffState{cfg: cfg}, op, opts...)
}

// backoffState is the bookkeeping of an untracked Retry: a ConnectionTracker
// without the timestamps, so a successful Retry never reads the clock.
type backoffState struct {
	cfg      RetryConfig
	attempts uint32
	failures uint32
	prev     time.Duration
}

func (b *backoffState) RecordAttempt()          { b.attempts++ }
func (b *backoffState) RecordSuccess()          {}
func (b *backoffState) RecordCanceled()         {}
func (b *backoffState) RecordStopped()          {}
func (b *backoffState) MaxDelay() time.Duration { return b.cfg.MaxDelay }
func (b *backoffState) RecordFailureDelay(err error) (time.Duration, bool) {
	b.failures++
	if IsPermanent(err) || b.cfg.exhausted(b.attempts) {
		return 0, false
	}
	b.prev = b.cfg.Delay(b.failures, b.prev)
	return b.prev, true
}

// RetryTracked is Retry with the policy and the bookkeeping of t (the seed's
// with_retry_tracked): every attempt, success and failure is recorded in t, and t
// decides whether and when to retry. Pass a *ConnectionTracker (one goroutine) or
// ConnectionManager.Tracked(id) (concurrent callers). Context errors are not
// recorded as failures of the connection: the caller gave up, the peer did not fail.
func RetryTracked[T any](ctx context.Context, t Tracked, op func(context.Context) (T, error), opts ...RetryOption) (T, error) {
	var s retrySettings
	var zero T
	if len(opts) > 0 {
		if err := apply(&s, opts); err != nil {
			return zero, err
		}
	}
	if ctx.Err() != nil {
		return zero, context.Cause(ctx)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var lastErr error
	woke := false // a loop accepts one adaptive wake-up
	for attempt := uint32(1); ; attempt++ {
		if len(s.guards) > 0 {
			if err := s.before(ctx, attempt); err != nil {
				t.RecordStopped() // nothing is scheduled any more
				if ctx.Err() != nil {
					return zero, errors.Join(context.Cause(ctx), lastErr)
				}
				return zero, errors.Join(err, lastErr)
			}
		}
		t.RecordAttempt()
		v, err := op(ctx)
		if err == nil {
			t.RecordSuccess()
			s.finished(attempt, nil, OutcomeSuccess)
			return v, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			// Gave up: not the connection's fault, so not recorded as its failure.
			t.RecordCanceled()
			s.finished(attempt, ctx.Err(), OutcomeCanceled)
			return zero, errors.Join(context.Cause(ctx), err)
		}
		delay, retry := t.RecordFailureDelay(err)
		s.finished(attempt, err, outcomeOf(err))
		if !retry {
			if IsPermanent(err) {
				return zero, err
			}
			if s.tracer != nil {
				s.tracer.RetriesExhausted()
			}
			return zero, &exhaustedError{attempts: attempt, last: err}
		}
		if d, ok := RetryAfterDelay(err); ok {
			delay = d
		}
		var woken <-chan struct{}
		if s.adaptive != nil {
			// Stretched, but never past the cap the user configured (a
			// jittered delay already above it is kept as it is).
			delay = min(s.adaptive.stretch(delay), max(delay, t.MaxDelay()))
			if !woke {
				woken = s.adaptive.recovered()
			}
		}
		if s.onRetry != nil {
			s.onRetry(attempt, err, delay)
		}
		if s.tracer != nil {
			s.tracer.RetryScheduled(delay)
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-timer.C:
		case <-s.wake:
			// Told to try now (see WakeOn): the next attempt starts at once.
		case <-woken:
			// The network came back: retry soon, spread so waiters do not stampede.
			woke = true
			if err := Sleep(ctx, s.adaptive.wakeSpread(delay)); err != nil {
				t.RecordStopped()
				return zero, errors.Join(err, lastErr)
			}
		case <-ctx.Done():
			t.RecordStopped()
			return zero, errors.Join(context.Cause(ctx), lastErr)
		}
	}
}

// finished reports an ended attempt to the guards, the adaptive backoff and the tracer.
func (s *retrySettings) finished(attempt uint32, err error, o Outcome) {
	if len(s.guards) > 0 {
		s.after(attempt, err)
	}
	if s.adaptive != nil && (o == OutcomeSuccess || o == OutcomeTransient) {
		s.adaptive.Record(err == nil)
	}
	if s.tracer != nil {
		s.tracer.AttemptCompleted(o)
	}
}

// Sleep waits for d or until ctx ends, whichever comes first, and returns
// context.Cause(ctx) in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

package resilience

import (
	"context"
	"errors"
	"fmt"
)

// A Guard takes part in every attempt of a retry loop. Circuit breakers, retry
// budgets, rate limiters and priority gates are guards; pass them to Retry or
// RetryTracked with WithGuards.
//
// Before is called before attempt n (1 = the first attempt). It may wait (honouring
// ctx) and returns an error to stop the loop without making the attempt. After is
// called if and only if Before returned nil, once the attempt ended, with:
//
//   - nil: the attempt succeeded;
//   - an error matching ErrNotAttempted: a later guard refused, no attempt was made;
//   - context.Canceled or context.DeadlineExceeded: the caller gave up, no verdict;
//   - anything else: the attempt failed.
//
// Implementations must be safe for concurrent use.
type Guard interface {
	Before(ctx context.Context, attempt uint32) error
	After(attempt uint32, err error)
}

// WithGuards adds guards to a Retry or RetryTracked call. Their Before methods run
// in the order given, their After methods in reverse order. A nil guard is an
// error naming its position.
func WithGuards(guards ...Guard) RetryOption {
	return func(s *retrySettings) error {
		for i, g := range guards {
			if g == nil {
				return fmt.Errorf("%w: WithGuards: guards[%d] is nil", ErrInvalidConfig, i)
			}
		}
		s.guards = append(s.guards, guards...)
		return nil
	}
}

// before runs every guard's Before; if one fails, those already passed get After
// with the error and the error is returned.
func (s *retrySettings) before(ctx context.Context, attempt uint32) error {
	for i, g := range s.guards {
		if err := g.Before(ctx, attempt); err != nil {
			skipped := &notAttemptedError{err}
			for j := i - 1; j >= 0; j-- {
				s.guards[j].After(attempt, skipped)
			}
			return err
		}
	}
	return nil
}

func (s *retrySettings) after(attempt uint32, err error) {
	for i := len(s.guards) - 1; i >= 0; i-- {
		s.guards[i].After(attempt, err)
	}
}

type notAttemptedError struct{ cause error }

func (e *notAttemptedError) Error() string   { return "attempt not made: " + e.cause.Error() }
func (e *notAttemptedError) Unwrap() []error { return []error{ErrNotAttempted, e.cause} }

// noVerdict reports whether err says nothing about the connection: the attempt was
// not made, or the caller gave up.
func noVerdict(err error) bool {
	return errors.Is(err, ErrNotAttempted) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

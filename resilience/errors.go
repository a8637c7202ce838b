package resilience

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrInvalidConfig marks a RetryConfig (or option) that Validate rejected.
	ErrInvalidConfig = errors.New("resilience: invalid config")
	// ErrExhausted is returned, together with the last operation error, when
	// every allowed attempt failed.
	ErrExhausted = errors.New("resilience: retry attempts exhausted")
	// ErrPermanent matches every error wrapped by Permanent.
	ErrPermanent error = permanentSentinel{}
	// ErrNotAttempted tells a Guard's After that a later guard refused the attempt.
	ErrNotAttempted = errors.New("resilience: attempt not made")
	// ErrCircuitOpen is returned when a CircuitBreaker refuses an attempt.
	ErrCircuitOpen = errors.New("resilience: circuit open")
	// ErrBudgetExhausted is returned when a RetryBudget has no token for a retry.
	ErrBudgetExhausted = errors.New("resilience: retry budget exhausted")
)

// Permanent marks err as one no retry can fix: Retry stops at once and a tracker
// moves to Failed. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// permanentSentinel is ErrPermanent's type.
type permanentSentinel struct{}

func (permanentSentinel) Error() string { return "resilience: permanent error" }

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent
// (or has an Is method that matches ErrPermanent): errors.Is(err, ErrPermanent).
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// RetryAfter tells Retry to wait d before the next attempt instead of the computed
// backoff (a server's Retry-After, libp2p's dial-backoff window). The attempt still
// counts. RetryAfter(d, nil) is nil.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{after: max(d, 0), err: err}
}

type retryAfterError struct {
	after time.Duration
	err   error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfterDelay returns the delay requested with RetryAfter somewhere in err's chain.
func RetryAfterDelay(err error) (time.Duration, bool) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.after, true
	}
	return 0, false
}

// exhaustedError matches both ErrExhausted and the last operation error.
type exhaustedError struct {
	attempts uint32
	last     error
}

func (e *exhaustedError) Error() string {
	return fmt.Sprintf("%v after %d attempts: %v", ErrExhausted, e.attempts, e.last)
}

func (e *exhaustedError) Unwrap() []error { return []error{ErrExhausted, e.last} }

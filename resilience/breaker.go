package resilience

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// BreakerState is the state of a CircuitBreaker.
//
//	         FailureThreshold consecutive failures
//	Closed ──────────────────────────────────────▶ Open
//	  ▲                                             │ OpenTimeout passed
//	  │ probe succeeded        probe failed         ▼
//	  └──────────────────── HalfOpen ──────────────▶ Open
//
// Closed lets every attempt through; Open refuses all; HalfOpen lets exactly one
// probe through and decides on its outcome.
type BreakerState uint8

// Breaker states.
const (
	BreakerClosed BreakerState = iota
	BreakerOpen
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", uint8(s))
}

// Breaker defaults.
const (
	DefaultBreakerThreshold   = 5
	DefaultBreakerOpenTimeout = 30 * time.Second
)

// BreakerConfig configures a CircuitBreaker.
type BreakerConfig struct {
	// FailureThreshold is the number of consecutive failures that opens the
	// breaker. Default (0): DefaultBreakerThreshold (5).
	FailureThreshold uint32
	// OpenTimeout is how long the breaker stays open before it lets one probe
	// through. Default (0): DefaultBreakerOpenTimeout (30s).
	OpenTimeout time.Duration
	// OnStateChange, if set, is called after every state change, without the
	// breaker's lock held.
	OnStateChange func(from, to BreakerState)
}

// CircuitBreaker stops attempts to a connection that is clearly down: after
// FailureThreshold consecutive failures it refuses attempts (ErrCircuitOpen) for
// OpenTimeout, then lets exactly one probe through. It is a Guard; use one per
// peer or service. It is safe for concurrent use.
type CircuitBreaker struct {
	cfg BreakerConfig

	mu       sync.Mutex
	state    BreakerState
	failures uint32
	openedAt time.Time
	probing  bool // a half-open probe is in flight
}

// NewCircuitBreaker returns a closed breaker.
func NewCircuitBreaker(cfg BreakerConfig) (*CircuitBreaker, error) {
	if cfg.OpenTimeout < 0 {
		return nil, fmt.Errorf("%w: BreakerConfig.OpenTimeout = %v must not be negative", ErrInvalidConfig, cfg.OpenTimeout)
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = DefaultBreakerThreshold
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = DefaultBreakerOpenTimeout
	}
	return &CircuitBreaker{cfg: cfg}, nil
}

// State returns the current state; an open breaker whose timeout has passed
// reports HalfOpen.
func (b *CircuitBreaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && time.Since(b.openedAt) >= b.cfg.OpenTimeout {
		return BreakerHalfOpen
	}
	return b.state
}

// Allow reports whether an attempt may start now. A nil result obliges the
// caller to report the attempt's outcome with Record.
func (b *CircuitBreaker) Allow() error {
	b.mu.Lock()
	from := b.state
	switch b.state {
	case BreakerClosed:
		b.mu.Unlock()
		return nil
	case BreakerOpen:
		wait := b.cfg.OpenTimeout - time.Since(b.openedAt)
		if wait > 0 {
			b.mu.Unlock()
			return fmt.Errorf("%w: next probe in %v", ErrCircuitOpen, wait.Round(time.Millisecond))
		}
		b.state = BreakerHalfOpen
	}
	// Half-open: one probe at a time.
	if b.probing {
		b.mu.Unlock()
		return fmt.Errorf("%w: probe in flight", ErrCircuitOpen)
	}
	b.probing = true
	b.mu.Unlock()
	b.changed(from, BreakerHalfOpen)
	return nil
}

// Record reports the outcome of an attempt that Allow let through: nil is a
// success; errors matching ErrNotAttempted or a context error give no verdict.
func (b *CircuitBreaker) Record(err error) {
	b.mu.Lock()
	from := b.state
	if from == BreakerHalfOpen {
		b.probing = false
	}
	switch {
	case noVerdict(err):
	case err == nil:
		b.state, b.failures = BreakerClosed, 0
	default:
		b.failures++
		if from == BreakerHalfOpen || (from == BreakerClosed && b.failures >= b.cfg.FailureThreshold) {
			b.state, b.openedAt = BreakerOpen, time.Now()
		}
	}
	to := b.state
	b.mu.Unlock()
	b.changed(from, to)
}

func (b *CircuitBreaker) changed(from, to BreakerState) {
	if from != to && b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(from, to)
	}
}

// Before implements Guard.
func (b *CircuitBreaker) Before(context.Context, uint32) error { return b.Allow() }

// After implements Guard.
func (b *CircuitBreaker) After(_ uint32, err error) { b.Record(err) }

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

// CircuitBreaker keeps a circuit breaker per peer (or any connection ID): after
// WithFailureThreshold consecutive failures of a peer it refuses the peer's
// attempts (ErrCircuitOpen) for WithOpenTimeout, then lets exactly one probe
// through, whose outcome closes or reopens it. Context errors and attempts a
// guard refused (ErrNotAttempted) say nothing about the peer and are ignored.
// Breakers live in a bounded store (WithMaxBreakerPeers): closed breakers
// without failures are forgotten first, as a new one would be the same. Pass
// Guard(id) with WithGuards. It is safe for concurrent use.
type CircuitBreaker struct {
	cfg   breakerConfig
	peers *peerStore[*breaker]
}

type breakerConfig struct {
	threshold     uint32
	openTimeout   time.Duration
	onStateChange func(id string, from, to BreakerState)
	maxPeers      int
}

// BreakerOption configures NewCircuitBreaker.
type BreakerOption func(*breakerConfig) error

// WithFailureThreshold sets the consecutive failures that open a peer's
// breaker. Default: 5. Must be >= 1.
func WithFailureThreshold(n uint32) BreakerOption {
	return func(c *breakerConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithFailureThreshold(%d): must be >= 1", ErrInvalidConfig, n)
		}
		c.threshold = n
		return nil
	}
}

// WithOpenTimeout sets how long an open breaker refuses attempts before it
// lets one probe through. Default: 30 s. Must be positive.
func WithOpenTimeout(d time.Duration) BreakerOption {
	return func(c *breakerConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithOpenTimeout(%v): must be positive", ErrInvalidConfig, d)
		}
		c.openTimeout = d
		return nil
	}
}

// WithOnStateChange calls fn after a peer's breaker changed state (outside the
// breaker's lock; fn must not block). Default: none. fn must not be nil.
func WithOnStateChange(fn func(id string, from, to BreakerState)) BreakerOption {
	return func(c *breakerConfig) error {
		if fn == nil {
			return fmt.Errorf("%w: WithOnStateChange(nil)", ErrInvalidConfig)
		}
		c.onStateChange = fn
		return nil
	}
}

// WithMaxBreakerPeers bounds how many peers' breakers are kept. Default: 4096.
// Must be >= 1.
func WithMaxBreakerPeers(n int) BreakerOption {
	return func(c *breakerConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxBreakerPeers(%d): must be >= 1", ErrInvalidConfig, n)
		}
		c.maxPeers = n
		return nil
	}
}

// NewCircuitBreaker returns a CircuitBreaker with every peer's breaker closed.
// An invalid option is an error wrapping ErrInvalidConfig that names it.
func NewCircuitBreaker(opts ...BreakerOption) (*CircuitBreaker, error) {
	cfg := breakerConfig{threshold: 5, openTimeout: 30 * time.Second, maxPeers: 4096}
	if err := apply(&cfg, opts); err != nil {
		return nil, err
	}
	return &CircuitBreaker{cfg: cfg, peers: newPeerStore(cfg.maxPeers,
		func() *breaker { return &breaker{} },
		func(b *breaker) bool { return b.resting() })}, nil
}

// breaker is one peer's breaker.
type breaker struct {
	mu       sync.Mutex
	state    BreakerState
	failures uint32
	openedAt time.Time
	probing  bool // a half-open probe is in flight
}

func (b *breaker) resting() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == BreakerClosed && b.failures == 0 && !b.probing
}

// State returns id's state; an open breaker whose timeout has passed reports
// BreakerHalfOpen (the next Allow lets the probe through). A peer without a
// breaker is BreakerClosed.
func (c *CircuitBreaker) State(id string) BreakerState {
	b, ok := c.peers.lookup(id)
	if !ok {
		return BreakerClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && time.Since(b.openedAt) >= c.cfg.openTimeout {
		return BreakerHalfOpen
	}
	return b.state
}

// Allow reports whether an attempt to id may start now: nil, or an error
// wrapping ErrCircuitOpen. A nil return while half-open makes the caller the
// probe; it must Record the outcome.
func (c *CircuitBreaker) Allow(id string) error {
	b := c.peers.get(id)
	b.mu.Lock()
	from := b.state
	switch b.state {
	case BreakerClosed:
		b.mu.Unlock()
		return nil
	case BreakerOpen:
		wait := c.cfg.openTimeout - time.Since(b.openedAt)
		if wait > 0 {
			b.mu.Unlock()
			return fmt.Errorf("%w: %s: next probe in %v", ErrCircuitOpen, id, wait.Round(time.Millisecond))
		}
		b.state = BreakerHalfOpen
	}
	if b.probing {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s: probe in flight", ErrCircuitOpen, id)
	}
	b.probing = true
	b.mu.Unlock()
	c.changed(id, from, BreakerHalfOpen)
	return nil
}

// Record records the outcome of an attempt to id that Allow let through.
func (c *CircuitBreaker) Record(id string, err error) {
	b := c.peers.get(id)
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
		if from == BreakerHalfOpen || (from == BreakerClosed && b.failures >= c.cfg.threshold) {
			b.state, b.openedAt = BreakerOpen, time.Now()
		}
	}
	to := b.state
	b.mu.Unlock()
	c.changed(id, from, to)
}

// Len returns the number of peers whose breaker is kept.
func (c *CircuitBreaker) Len() int { return c.peers.len() }

func (c *CircuitBreaker) changed(id string, from, to BreakerState) {
	if from != to && c.cfg.onStateChange != nil {
		c.cfg.onStateChange(id, from, to)
	}
}

// Guard returns the Guard of id's breaker: Allow before each attempt, Record
// after it.
func (c *CircuitBreaker) Guard(id string) Guard { return breakerGuard{c, id} }

type breakerGuard struct {
	c  *CircuitBreaker
	id string
}

func (g breakerGuard) Before(context.Context, uint32) error { return g.c.Allow(g.id) }
func (g breakerGuard) After(_ uint32, err error)            { g.c.Record(g.id, err) }

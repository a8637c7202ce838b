package resilience

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

type adaptiveConfig struct {
	window     int
	threshold  float64
	stretch    float64
	wakeSpread time.Duration
}

// AdaptiveOption configures NewAdaptiveBackoff.
type AdaptiveOption func(*adaptiveConfig) error

// WithAdaptiveWindow sets how many recent outcomes are considered. Default: 20.
// Must be in [1, 1048576].
func WithAdaptiveWindow(n int) AdaptiveOption {
	return func(c *adaptiveConfig) error {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("%w: WithAdaptiveWindow(%d): must be in [1, 1048576]", ErrInvalidConfig, n)
		}
		c.window = n
		return nil
	}
}

// WithAdaptiveThreshold sets the failure share of a full window at which the
// network counts as down. Default: 0.9. Must be in (0, 1].
func WithAdaptiveThreshold(share float64) AdaptiveOption {
	return func(c *adaptiveConfig) error {
		if !(share > 0 && share <= 1) {
			return fmt.Errorf("%w: WithAdaptiveThreshold(%v): must be in (0, 1]", ErrInvalidConfig, share)
		}
		c.threshold = share
		return nil
	}
}

// WithAdaptiveStretch sets the factor retry delays are multiplied by while the
// network is down, never past the RetryConfig's MaxDelay. Default: 3. Must be
// a finite number >= 1.
func WithAdaptiveStretch(factor float64) AdaptiveOption {
	return func(c *adaptiveConfig) error {
		if !(factor >= 1) || math.IsInf(factor, 0) {
			return fmt.Errorf("%w: WithAdaptiveStretch(%v): must be a finite number >= 1", ErrInvalidConfig, factor)
		}
		c.stretch = factor
		return nil
	}
}

// WithWakeSpread bounds the random wait of retries woken by a recovery, so
// that they do not all dial at the same instant. Default: 1 s. 0 wakes them
// at once. Must not be negative.
func WithWakeSpread(d time.Duration) AdaptiveOption {
	return func(c *adaptiveConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: WithWakeSpread(%v): must not be negative", ErrInvalidConfig, d)
		}
		c.wakeSpread = d
		return nil
	}
}

// AdaptiveBackoff watches the outcomes of attempts across all peers. When nearly
// all recent attempts failed (the network, not a peer, is down) it stretches retry
// delays, saving dials that cannot succeed; on the first success after that it
// wakes every waiting retry, spread by jitter, instead of leaving them asleep for
// the rest of a long backoff. Each Retry call accepts one wake-up: a retry woken
// in vain goes back to its own backoff. Share one per host; pass it with
// WithAdaptive. It is safe for concurrent use.
type AdaptiveBackoff struct {
	cfg adaptiveConfig

	mu       sync.Mutex
	ring     []bool // true = failure
	next     int
	filled   int
	failures int
	down     bool
	wake     chan struct{}
}

// NewAdaptiveBackoff returns an AdaptiveBackoff that considers the network up.
// An invalid option is an error wrapping ErrInvalidConfig that names it.
func NewAdaptiveBackoff(opts ...AdaptiveOption) (*AdaptiveBackoff, error) {
	cfg := adaptiveConfig{window: 20, threshold: 0.9, stretch: 3, wakeSpread: time.Second}
	if err := apply(&cfg, opts); err != nil {
		return nil, err
	}
	return &AdaptiveBackoff{cfg: cfg, ring: make([]bool, cfg.window), wake: make(chan struct{})}, nil
}

// Record adds an attempt's outcome. The first success while the network counts
// as down wakes every waiting retry and starts a fresh window: the
// network counts as down again only after a whole window of new outcomes says
// so, so a single peer that keeps succeeding among many dead ones cannot wake
// their retries over and over.
func (a *AdaptiveBackoff) Record(success bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if success && a.down {
		a.down = false
		close(a.wake)
		a.wake = make(chan struct{})
		clear(a.ring)
		a.next, a.filled, a.failures = 0, 0, 0
		return
	}
	if a.filled == len(a.ring) && a.ring[a.next] {
		a.failures--
	}
	a.ring[a.next] = !success
	if !success {
		a.failures++
	}
	a.next = (a.next + 1) % len(a.ring)
	a.filled = min(a.filled+1, len(a.ring))
	if !success && a.filled == len(a.ring) && float64(a.failures) >= a.cfg.threshold*float64(len(a.ring)) {
		a.down = true
	}
}

// Down reports whether the network currently counts as down.
func (a *AdaptiveBackoff) Down() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.down
}

// stretch returns d stretched while the network is down, else d. RetryTracked
// keeps the stretched delay within the tracker's MaxDelay.
func (a *AdaptiveBackoff) stretch(d time.Duration) time.Duration {
	if !a.Down() {
		return d
	}
	f := float64(d) * a.cfg.stretch
	if f >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(f)
}

// recovered returns a channel closed at the next recovery (the first success
// after the network counted as down).
func (a *AdaptiveBackoff) recovered() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wake
}

// wakeSpread returns the random wait of a retry woken by a recovery whose
// scheduled delay was d: uniform [0, min(d, WithWakeSpread)].
func (a *AdaptiveBackoff) wakeSpread(d time.Duration) time.Duration {
	return scale(max(min(d, a.cfg.wakeSpread), 0), rand.Float64())
}

package resilience

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Adaptive backoff defaults.
const (
	DefaultAdaptiveWindow    = 20
	DefaultAdaptiveThreshold = 0.9
	DefaultAdaptiveStretch   = 3.0
	DefaultAdaptiveSpread    = time.Second
)

// AdaptiveConfig configures an AdaptiveBackoff. Zero fields take the defaults.
type AdaptiveConfig struct {
	// Window is the number of recent outcomes considered. Default: 20.
	Window int
	// Threshold is the failure share of a full window at which the network counts
	// as down. Default: 0.9.
	Threshold float64
	// Stretch multiplies retry delays while the network is down, never past the
	// RetryConfig's MaxDelay. Default: 3.
	Stretch float64
	// WakeSpread bounds the random wait of retries woken by a recovery: each waits
	// uniform [0, min(its delay, WakeSpread)]. Default: 1s.
	WakeSpread time.Duration
}

// AdaptiveBackoff watches the outcomes of attempts across all peers. When nearly
// all recent attempts failed (the network, not a peer, is down) it stretches retry
// delays, saving dials that cannot succeed; on the first success after that it
// wakes every waiting retry, spread by jitter, instead of leaving them asleep for
// the rest of a long backoff. Each Retry call accepts one wake-up: a retry woken
// in vain goes back to its own backoff. Share one per host; pass it with
// WithAdaptive. It is safe for concurrent use.
type AdaptiveBackoff struct {
	cfg AdaptiveConfig

	mu       sync.Mutex
	ring     []bool // true = failure
	next     int
	filled   int
	failures int
	down     bool
	wake     chan struct{}
}

// NewAdaptiveBackoff returns an AdaptiveBackoff that considers the network up.
func NewAdaptiveBackoff(cfg AdaptiveConfig) (*AdaptiveBackoff, error) {
	switch {
	case cfg.Window < 0 || cfg.Window > 1<<20:
		return nil, fmt.Errorf("%w: AdaptiveConfig.Window = %d must be in [1, 1048576]", ErrInvalidConfig, cfg.Window)
	case math.IsNaN(cfg.Threshold) || cfg.Threshold < 0 || cfg.Threshold > 1:
		return nil, fmt.Errorf("%w: AdaptiveConfig.Threshold = %v must be in (0, 1]", ErrInvalidConfig, cfg.Threshold)
	case math.IsNaN(cfg.Stretch) || math.IsInf(cfg.Stretch, 0) || (cfg.Stretch != 0 && cfg.Stretch < 1):
		return nil, fmt.Errorf("%w: AdaptiveConfig.Stretch = %v must be a finite number >= 1", ErrInvalidConfig, cfg.Stretch)
	case cfg.WakeSpread < 0:
		return nil, fmt.Errorf("%w: AdaptiveConfig.WakeSpread = %v must not be negative", ErrInvalidConfig, cfg.WakeSpread)
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultAdaptiveWindow
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = DefaultAdaptiveThreshold
	}
	if cfg.Stretch == 0 {
		cfg.Stretch = DefaultAdaptiveStretch
	}
	if cfg.WakeSpread == 0 {
		cfg.WakeSpread = DefaultAdaptiveSpread
	}
	return &AdaptiveBackoff{cfg: cfg, ring: make([]bool, cfg.Window), wake: make(chan struct{})}, nil
}

// Record adds an attempt's outcome. The first success while the network counts
// as down wakes every retry waiting on Recovered and starts a fresh window: the
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
	if !success && a.filled == len(a.ring) && float64(a.failures) >= a.cfg.Threshold*float64(len(a.ring)) {
		a.down = true
	}
}

// Down reports whether the network currently counts as down.
func (a *AdaptiveBackoff) Down() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.down
}

// Stretch returns d stretched while the network is down, else d. RetryTracked
// keeps the stretched delay within the tracker's MaxDelay.
func (a *AdaptiveBackoff) Stretch(d time.Duration) time.Duration {
	if !a.Down() {
		return d
	}
	f := float64(d) * a.cfg.Stretch
	if f >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(f)
}

// Recovered returns a channel closed at the next recovery (the first success
// after the network counted as down).
func (a *AdaptiveBackoff) Recovered() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wake
}

// WakeSpread returns the random wait of a retry woken by a recovery whose
// scheduled delay was d: uniform [0, min(d, WakeSpread)].
func (a *AdaptiveBackoff) WakeSpread(d time.Duration) time.Duration {
	return scale(max(min(d, a.cfg.WakeSpread), 0), rand.Float64())
}

package resilience

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// PeerRateLimiter limits the attempt rate per peer: each peer gets its own
// token bucket (golang.org/x/time/rate) of WithPeerRate's perSecond tokens per
// second and its burst. Memory is bounded (WithMaxRateLimitedPeers): peers
// whose bucket is full are forgotten first, as a new bucket would be the same.
// It is safe for concurrent use.
type PeerRateLimiter struct {
	limit rate.Limit
	burst int
	peers *peerStore[*rate.Limiter]
}

type rateLimitConfig struct {
	perSecond float64
	burst     int
	maxPeers  int
}

// RateLimitOption configures NewPeerRateLimiter.
type RateLimitOption func(*rateLimitConfig) error

// WithPeerRate sets each peer's attempt rate: perSecond attempts per second,
// bursts of burst. Default: 1 per second, bursts of 3. perSecond must be a
// positive finite number, burst >= 1.
func WithPeerRate(perSecond float64, burst int) RateLimitOption {
	return func(c *rateLimitConfig) error {
		switch {
		case !(perSecond > 0) || math.IsInf(perSecond, 0):
			return fmt.Errorf("%w: WithPeerRate(%v, %d): perSecond must be a positive finite number", ErrInvalidConfig, perSecond, burst)
		case burst < 1:
			return fmt.Errorf("%w: WithPeerRate(%v, %d): burst must be >= 1", ErrInvalidConfig, perSecond, burst)
		}
		c.perSecond, c.burst = perSecond, burst
		return nil
	}
}

// WithMaxRateLimitedPeers bounds how many peers' buckets are kept. Default:
// 4096. Must be >= 1.
func WithMaxRateLimitedPeers(n int) RateLimitOption {
	return func(c *rateLimitConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxRateLimitedPeers(%d): must be >= 1", ErrInvalidConfig, n)
		}
		c.maxPeers = n
		return nil
	}
}

// NewPeerRateLimiter returns a PeerRateLimiter. An invalid option is an error
// wrapping ErrInvalidConfig that names it.
func NewPeerRateLimiter(opts ...RateLimitOption) (*PeerRateLimiter, error) {
	cfg := rateLimitConfig{perSecond: 1, burst: 3, maxPeers: 4096}
	if err := apply(&cfg, opts); err != nil {
		return nil, err
	}
	l := &PeerRateLimiter{limit: rate.Limit(cfg.perSecond), burst: cfg.burst}
	l.peers = newPeerStore(cfg.maxPeers,
		func() *rate.Limiter { return rate.NewLimiter(l.limit, l.burst) },
		func(lim *rate.Limiter) bool { return lim.TokensAt(time.Now()) >= float64(l.burst) })
	return l, nil
}

// Allow takes a token for id if one is available now and reports whether it did.
func (l *PeerRateLimiter) Allow(id string) bool { return l.peers.get(id).Allow() }

// Wait blocks until id may make an attempt, or ctx ends (returning its cause).
func (l *PeerRateLimiter) Wait(ctx context.Context, id string) error {
	if err := l.peers.get(id).Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err // the wait would outlast ctx's deadline
	}
	return nil
}

// Len returns the number of peers whose bucket is kept.
func (l *PeerRateLimiter) Len() int { return l.peers.len() }

// Guard returns a Guard that waits for id's token before each attempt.
func (l *PeerRateLimiter) Guard(id string) Guard { return rateGuard{l, id} }

type rateGuard struct {
	l  *PeerRateLimiter
	id string
}

func (g rateGuard) Before(ctx context.Context, _ uint32) error { return g.l.Wait(ctx, g.id) }
func (g rateGuard) After(uint32, error)                        {}

// apply runs opts on cfg, in order; a nil option is an error naming its index.
func apply[C any, O ~func(*C) error](cfg *C, opts []O) error {
	for i, o := range opts {
		if o == nil {
			return fmt.Errorf("%w: option %d is nil", ErrInvalidConfig, i)
		}
		if err := o(cfg); err != nil {
			return err
		}
	}
	return nil
}

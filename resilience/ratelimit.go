package resilience

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxRateLimitedPeers bounds the peers a PeerRateLimiter remembers.
const DefaultMaxRateLimitedPeers = 4096

// PeerRateLimiter caps the rate of attempts per peer, so that no combination of
// callers, reconnect loops and health probes overwhelms one peer. Each peer gets a
// token bucket (golang.org/x/time/rate) of PerSecond tokens per second and Burst
// capacity. Buckets that are full again are forgotten first when the limiter
// holds more than its maximum, so memory stays bounded. It is safe for
// concurrent use.
type PeerRateLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu    sync.Mutex
	peers map[string]*rate.Limiter
}

// NewPeerRateLimiter returns a limiter allowing perSecond attempts per second per
// peer with bursts of burst; maxPeers bounds its memory (0 = DefaultMaxRateLimitedPeers).
func NewPeerRateLimiter(perSecond float64, burst, maxPeers int) (*PeerRateLimiter, error) {
	switch {
	case !(perSecond > 0) || math.IsInf(perSecond, 0):
		return nil, fmt.Errorf("%w: PeerRateLimiter perSecond = %v must be a positive finite number", ErrInvalidConfig, perSecond)
	case burst < 1:
		return nil, fmt.Errorf("%w: PeerRateLimiter burst = %d must be >= 1", ErrInvalidConfig, burst)
	case maxPeers < 0:
		return nil, fmt.Errorf("%w: PeerRateLimiter maxPeers = %d must not be negative", ErrInvalidConfig, maxPeers)
	}
	if maxPeers == 0 {
		maxPeers = DefaultMaxRateLimitedPeers
	}
	return &PeerRateLimiter{limit: rate.Limit(perSecond), burst: burst, max: maxPeers, peers: make(map[string]*rate.Limiter)}, nil
}

func (l *PeerRateLimiter) limiter(id string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.peers[id]
	if lim == nil {
		if len(l.peers) >= l.max {
			l.forgetFullLocked()
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.peers[id] = lim
	}
	return lim
}

// forgetFullLocked drops the buckets that are full again, which are no different
// from new ones; if that frees nothing, it drops arbitrary buckets (a flood of new
// peer IDs, each allowed its burst) so the map never exceeds its bound.
func (l *PeerRateLimiter) forgetFullLocked() {
	now := time.Now()
	for id, lim := range l.peers {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.peers, id)
		}
	}
	for id := range l.peers {
		if len(l.peers) < l.max {
			break
		}
		delete(l.peers, id)
	}
}

// Allow reports whether an attempt to id may start now, taking a token if so.
func (l *PeerRateLimiter) Allow(id string) bool { return l.limiter(id).Allow() }

// Wait blocks until an attempt to id may start or ctx ends.
func (l *PeerRateLimiter) Wait(ctx context.Context, id string) error {
	if err := l.limiter(id).Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err // the wait would outlast ctx's deadline
	}
	return nil
}

// Len returns the number of peers with a bucket.
func (l *PeerRateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}

// Guard returns a Guard that waits for id's rate limit before each attempt.
func (l *PeerRateLimiter) Guard(id string) Guard { return rateGuard{l, id} }

type rateGuard struct {
	l  *PeerRateLimiter
	id string
}

func (g rateGuard) Before(ctx context.Context, _ uint32) error { return g.l.Wait(ctx, g.id) }
func (g rateGuard) After(uint32, error)                        {}

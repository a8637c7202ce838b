package dialer

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// DefaultMaxConcurrentDials is the default bound on the Host's dials in flight
// at once (WithMaxConcurrentDials).
const DefaultMaxConcurrentDials = 16

// RetryEventBuffer is how many retry notifications (WithOnRetry,
// EvtConnectRetry) may wait for a slow consumer before new ones are dropped.
const RetryEventBuffer = 256

// Option configures Wrap.
type Option func(*config) error

type config struct {
	manager         *resilience.ConnectionManager
	defaultCfg      resilience.RetryConfig
	bootstrapCfg    resilience.RetryConfig
	webrtcCfg       resilience.RetryConfig
	bootstrapPeers  []peer.ID
	tracer          MetricsTracer
	retryTracer     resilience.MetricsTracer
	retryOptions    func(id peer.ID) []resilience.RetryOption
	maxDials        int
	ipDialRate      float64
	ipDialBurst     int
	onRetry         func(id peer.ID, attempt uint32, err error, delay time.Duration)
	emitRetryEvents bool
}

func defaultConfig() config {
	return config{
		defaultCfg:      resilience.ForDHTPeer(),
		bootstrapCfg:    resilience.ForDHTBootstrap(),
		webrtcCfg:       resilience.ForWebRTC(),
		maxDials:        DefaultMaxConcurrentDials,
		ipDialRate:      DefaultIPDialRate,
		ipDialBurst:     DefaultIPDialBurst,
		emitRetryEvents: true,
	}
}

// WithManager makes the Host record its trackers in m, so other components
// (health monitoring, bootstrap) can share them. Default: a new
// resilience.ConnectionManager whose default config is the Host's default profile.
func WithManager(m *resilience.ConnectionManager) Option {
	return func(c *config) error {
		if m == nil {
			return errors.New("dialer: WithManager: manager must not be nil")
		}
		c.manager = m
		return nil
	}
}

// WithDefaultConfig sets the retry profile of peers without a profile of their
// own. Default: resilience.ForDHTPeer() (3 attempts, 1s initial delay, 30s cap).
func WithDefaultConfig(cfg resilience.RetryConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("dialer: WithDefaultConfig: %w", err)
		}
		c.defaultCfg = cfg
		return nil
	}
}

// WithBootstrapPeers registers bootstrap peers; they use the bootstrap profile
// (WithBootstrapConfig) unless SetProfile gives them another. Default: none.
func WithBootstrapPeers(ids ...peer.ID) Option {
	return func(c *config) error {
		for i, id := range ids {
			if id == "" {
				return fmt.Errorf("dialer: WithBootstrapPeers: ids[%d] is empty", i)
			}
		}
		c.bootstrapPeers = append(c.bootstrapPeers, ids...)
		return nil
	}
}

// WithBootstrapConfig sets the retry profile of bootstrap peers.
// Default: resilience.ForDHTBootstrap() (5 attempts, 2s initial delay, 60s cap).
func WithBootstrapConfig(cfg resilience.RetryConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("dialer: WithBootstrapConfig: %w", err)
		}
		c.bootstrapCfg = cfg
		return nil
	}
}

// WithWebRTCConfig sets the profile of peers whose only usable addresses are
// /webrtc-direct (see Host.Profile). Default: resilience.ForWebRTC() (3
// attempts, 1 s initial delay, 15 s cap: WebRTC runs its own ICE retries).
func WithWebRTCConfig(cfg resilience.RetryConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("dialer: WithWebRTCConfig: %w", err)
		}
		c.webrtcCfg = cfg
		return nil
	}
}

// WithMetricsTracer reports dials, shared rounds, reconnects and dropped retry
// notifications to t (see NewMetricsTracer). Default: nil (metrics off).
func WithMetricsTracer(t MetricsTracer) Option {
	return func(c *config) error {
		c.tracer = t
		return nil
	}
}

// WithRetryMetrics passes t to every retry loop (resilience.WithRetryMetrics):
// attempts by outcome, scheduled retries and their delays, exhausted loops.
// Default: nil (off). Tracker metrics belong to the manager
// (resilience.WithManagerMetrics).
func WithRetryMetrics(t resilience.MetricsTracer) Option {
	return func(c *config) error {
		c.retryTracer = t
		return nil
	}
}

// WithRetryOptions adds fn(id)'s options to every retry round for peer id: the
// place for resilience's guards and adaptive backoff, for example a retry
// budget shared by all peers, a circuit breaker or rate limit per peer:
//
//	budget, _ := resilience.NewRetryBudget()
//	adaptive, _ := resilience.NewAdaptiveBackoff()
//	limit, _ := resilience.NewPeerRateLimiter(resilience.WithPeerRate(1, 3))
//	dialer.WithRetryOptions(func(id peer.ID) []resilience.RetryOption {
//		return []resilience.RetryOption{
//			resilience.WithGuards(budget, limit.Guard(id.String())),
//			resilience.WithAdaptive(adaptive),
//		}
//	})
//
// A guard that refuses an attempt ends the round with its error
// (resilience.ErrBudgetExhausted, ErrCircuitOpen, ...). The options apply before
// the Host's own, so an OnRetry among them is replaced by the Host's (use
// WithOnRetry). They do not apply to ConnectOnce, a single probe dial. fn runs
// once per round, on the round's goroutine. Default: none.
func WithRetryOptions(fn func(id peer.ID) []resilience.RetryOption) Option {
	return func(c *config) error {
		c.retryOptions = fn
		return nil
	}
}

// WithMaxConcurrentDials bounds how many dials the Host makes at once, across
// every peer and every kind of request (rounds, probes, keep-alive, bootstrap);
// further dials wait for a slot, highest priority first (bootstrap peers, then
// kept peers, then DHT peers, then the rest; see WithPriority). A round waiting
// for its next attempt holds no slot. Default: DefaultMaxConcurrentDials (16).
// Must be >= 1.
func WithMaxConcurrentDials(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("dialer: WithMaxConcurrentDials(%d): n must be >= 1", n)
		}
		c.maxDials = n
		return nil
	}
}

// WithIPDialLimit sets the per-IP connection rate the Host keeps its dials
// under: perSecond connections per second with a burst of burst, per IPv4
// address and IPv6 /56, loopback exempt, each address of a peer counting as
// one connection. It should mirror the resource manager's connection rate
// limit of the wrapped host (go-libp2p's default: DefaultIPDialRate 0.2/s,
// DefaultIPDialBurst 16, which is the default here), which refuses dials past
// it: the Host then defers such dials instead of spending attempts on them. A
// refusal is never counted against the peer either way. Probes leave half of
// each IP's burst to the dials that follow a successful one (the fan-out after
// the network's return), waiting rather than spending it. WithIPDialLimit(0, 0)
// turns the mirror off (refusals still wait). perSecond must be >= 0 and finite,
// burst >= 1 unless both are 0.
func WithIPDialLimit(perSecond float64, burst int) Option {
	return func(c *config) error {
		switch {
		case perSecond == 0 && burst == 0:
		case math.IsNaN(perSecond) || math.IsInf(perSecond, 0) || perSecond <= 0:
			return fmt.Errorf("dialer: WithIPDialLimit(%v, %d): perSecond must be a positive finite number", perSecond, burst)
		case burst < 1:
			return fmt.Errorf("dialer: WithIPDialLimit(%v, %d): burst must be >= 1", perSecond, burst)
		}
		c.ipDialRate, c.ipDialBurst = perSecond, burst
		return nil
	}
}

// WithOnRetry calls fn after each failed attempt that will be retried, with the
// peer, the attempt number (1 = the first attempt of the round), its error and the
// delay before the next attempt — enough for a UI line like "reconnecting
// (attempt 2, next in 1.9s)". Default: nil.
//
// fn runs on one goroutine owned by the Host, in order, never on the retrying
// goroutine or a swarm goroutine: a slow fn delays neither dials nor connection
// events. While fn (or a subscriber of EvtConnectRetry) is stalled, up to
// RetryEventBuffer notifications wait and later ones are dropped (counted
// by MetricsTracer.RetryEventDropped). Close waits for a running fn to return.
func WithOnRetry(fn func(id peer.ID, attempt uint32, err error, delay time.Duration)) Option {
	return func(c *config) error {
		c.onRetry = fn
		return nil
	}
}

// WithoutRetryEvents stops the Host from emitting EvtConnectRetry on the event
// bus. Default: events are emitted.
func WithoutRetryEvents() Option {
	return func(c *config) error {
		c.emitRetryEvents = false
		return nil
	}
}

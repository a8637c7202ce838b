package dialer

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// DefaultMaxReconnects is the default bound on keep-alive reconnect dials in
// flight at once (WithMaxReconnects).
const DefaultMaxReconnects = 8

// RetryEventBuffer is how many retry notifications (WithOnRetry,
// EvtConnectRetry) may wait for a slow consumer before new ones are dropped.
const RetryEventBuffer = 256

// Option configures Wrap.
type Option func(*config) error

type config struct {
	manager         *resilience.ConnectionManager
	defaultCfg      resilience.RetryConfig
	bootstrapCfg    resilience.RetryConfig
	bootstrapPeers  []peer.ID
	tracer          MetricsTracer
	retryTracer     resilience.MetricsTracer
	retryOptions    func(id peer.ID) []resilience.RetryOption
	maxReconnects   int
	onRetry         func(id peer.ID, attempt uint32, err error, delay time.Duration)
	emitRetryEvents bool
}

func defaultConfig() config {
	return config{
		defaultCfg:      resilience.ForDHTPeer(),
		bootstrapCfg:    resilience.ForDHTBootstrap(),
		maxReconnects:   DefaultMaxReconnects,
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
//	budget, _ := resilience.NewRetryBudget(resilience.BudgetConfig{})
//	adaptive, _ := resilience.NewAdaptiveBackoff(resilience.AdaptiveConfig{})
//	limit, _ := resilience.NewPeerRateLimiter(1, 3, 0)
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

// WithMaxReconnects bounds how many keep-alive reconnect dials (KeepConnected)
// may be in flight at once; further reconnects wait for a slot. It does not limit
// Connect calls. Default: DefaultMaxReconnects (8). Must be >= 1.
func WithMaxReconnects(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("dialer: WithMaxReconnects(%d): n must be >= 1", n)
		}
		c.maxReconnects = n
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

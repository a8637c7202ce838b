package dialer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/internal/promutil"
)

// MetricsTracer receives the dialer's countable events. Implementations must be
// safe for concurrent use and cheap: they run on dial paths. A nil MetricsTracer
// (the default) turns metrics off.
type MetricsTracer interface {
	// DialAttempted is called when one dial of a retry round, a keep-alive
	// reconnect or ConnectOnce returned; class is Classify of its error
	// (ClassNone: it succeeded).
	DialAttempted(class ErrorClass)
	// ConnectJoined is called when a Connect call joined a round already running
	// for its peer instead of starting one (the scheduler saved dials).
	ConnectJoined()
	// SwarmBackoffCleared is called when the Host cleared the swarm's dial
	// backoff of a peer before dialing it.
	SwarmBackoffCleared()
	// ReconnectStarted is called when a kept peer lost its last connection and
	// the Host starts reconnecting it.
	ReconnectStarted()
	// ReconnectSucceeded is called when a kept peer is connected again.
	ReconnectSucceeded()
	// ReconnectRoundFailed is called when a reconnect round for a kept peer ended
	// without a connection (exhausted or permanent); another round follows.
	ReconnectRoundFailed()
	// RetryEventDropped is called when a retry notification was dropped because
	// the OnRetry callback or an EvtConnectRetry subscriber is stalled.
	RetryEventDropped()
}

type metricsTracer struct {
	dials         [classCount]prometheus.Counter
	joined        prometheus.Counter
	cleared       prometheus.Counter
	reconnStarted prometheus.Counter
	reconnOK      prometheus.Counter
	reconnFailed  prometheus.Counter
	dropped       prometheus.Counter
}

// MetricsOption configures NewMetricsTracer.
type MetricsOption = promutil.Option

// WithRegisterer registers the metrics with reg. Default:
// prometheus.DefaultRegisterer. reg must not be nil.
func WithRegisterer(reg prometheus.Registerer) MetricsOption { return promutil.WithRegisterer(reg) }

// NewMetricsTracer returns a MetricsTracer exporting Prometheus counters:
//
//	libp2p_resilience_dialer_dials_total{class}              dials by ErrorClass ("none" = success)
//	libp2p_resilience_dialer_connect_joined_total            Connect calls that joined a running round
//	libp2p_resilience_dialer_swarm_backoff_cleared_total     swarm dial backoffs cleared before a dial
//	libp2p_resilience_dialer_reconnects_started_total        kept peers that lost their last connection
//	libp2p_resilience_dialer_reconnects_succeeded_total      kept peers connected again
//	libp2p_resilience_dialer_reconnect_rounds_failed_total   reconnect rounds that ended without a connection
//	libp2p_resilience_dialer_retry_events_dropped_total      retry notifications dropped for a stalled consumer
//
// Collectors already registered under the same names are reused, so several
// Hosts in one process share the metrics. The tracer allocates nothing per event.
func NewMetricsTracer(opts ...MetricsOption) (MetricsTracer, error) {
	cfg, err := promutil.Apply("dialer", opts)
	if err != nil {
		return nil, err
	}
	dials, err := promutil.Register(cfg.Reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "libp2p", Subsystem: "resilience_dialer", Name: "dials_total",
		Help: "Dials made by the resilience dialer, by error class (none = success).",
	}, []string{"class"}))
	if err != nil {
		return nil, err
	}
	counter := func(name, help string) (prometheus.Counter, error) {
		return promutil.Register(cfg.Reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "libp2p", Subsystem: "resilience_dialer", Name: name, Help: help,
		}))
	}
	t := &metricsTracer{}
	for _, c := range []struct {
		dst        *prometheus.Counter
		name, help string
	}{
		{&t.joined, "connect_joined_total", "Connect calls that joined a retry round already running for the peer."},
		{&t.cleared, "swarm_backoff_cleared_total", "Swarm dial backoffs cleared before a scheduled dial."},
		{&t.reconnStarted, "reconnects_started_total", "Kept peers that lost their last connection."},
		{&t.reconnOK, "reconnects_succeeded_total", "Kept peers connected again."},
		{&t.reconnFailed, "reconnect_rounds_failed_total", "Reconnect rounds for kept peers that ended without a connection."},
		{&t.dropped, "retry_events_dropped_total", "Retry notifications dropped because their consumer was stalled."},
	} {
		if *c.dst, err = counter(c.name, c.help); err != nil {
			return nil, err
		}
	}
	for cl := range classCount {
		t.dials[cl] = dials.WithLabelValues(cl.String())
	}
	return t, nil
}

func (t *metricsTracer) DialAttempted(class ErrorClass) {
	if class < classCount {
		t.dials[class].Inc()
	}
}

func (t *metricsTracer) ConnectJoined()        { t.joined.Inc() }
func (t *metricsTracer) SwarmBackoffCleared()  { t.cleared.Inc() }
func (t *metricsTracer) ReconnectStarted()     { t.reconnStarted.Inc() }
func (t *metricsTracer) ReconnectSucceeded()   { t.reconnOK.Inc() }
func (t *metricsTracer) ReconnectRoundFailed() { t.reconnFailed.Inc() }
func (t *metricsTracer) RetryEventDropped()    { t.dropped.Inc() }

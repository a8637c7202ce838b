package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/internal/promutil"
)

// Outcome classifies how an attempt ended, for metrics.
type Outcome uint8

// Attempt outcomes.
const (
	OutcomeSuccess   Outcome = iota // the attempt succeeded
	OutcomeTransient                // failed; a retry may help
	OutcomePermanent                // failed with a Permanent error
	OutcomeCanceled                 // the caller's context ended
	outcomeCount
)

var outcomeNames = [...]string{"success", "transient", "permanent", "canceled"}

// String returns the outcome's label value.
func (o Outcome) String() string {
	if o < outcomeCount {
		return outcomeNames[o]
	}
	return "unknown"
}

func outcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeSuccess
	case IsPermanent(err):
		return OutcomePermanent
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	default:
		return OutcomeTransient
	}
}

// MetricsTracer receives the events worth counting. Implementations must be safe
// for concurrent use and cheap: they run on retry and connection-event paths.
// A nil MetricsTracer turns metrics off.
type MetricsTracer interface {
	// AttemptCompleted is called when an attempt ends.
	AttemptCompleted(o Outcome)
	// RetryScheduled is called when a failed attempt will be retried after delay.
	RetryScheduled(delay time.Duration)
	// RetriesExhausted is called when a retry loop gives up after MaxAttempts.
	RetriesExhausted()
	// TrackerStateChanged is called when a managed tracker changes state.
	TrackerStateChanged(from, to ConnectionState)
	// TrackerCreated is called when a manager creates a tracker (in state Idle).
	TrackerCreated()
	// TrackerRemoved is called when a manager removes, expires or evicts a tracker.
	TrackerRemoved(last ConnectionState)
}

type metricsTracer struct {
	attempts  [outcomeCount]prometheus.Counter
	retries   prometheus.Counter
	delay     prometheus.Observer
	exhausted prometheus.Counter
	entered   [stateCount]prometheus.Counter
	trackers  [stateCount]prometheus.Gauge
}

// MetricsOption configures NewMetricsTracer.
type MetricsOption = promutil.Option

// WithRegisterer registers the metrics with reg. Default:
// prometheus.DefaultRegisterer. reg must not be nil.
func WithRegisterer(reg prometheus.Registerer) MetricsOption { return promutil.WithRegisterer(reg) }

// NewMetricsTracer returns a MetricsTracer exporting Prometheus metrics:
//
//	libp2p_resilience_attempts_total{outcome}         attempts by outcome
//	libp2p_resilience_retries_total                   retries scheduled
//	libp2p_resilience_retry_delay_seconds             histogram of scheduled delays
//	libp2p_resilience_exhausted_total                 retry loops that gave up
//	libp2p_resilience_tracker_transitions_total{state} tracker entries into each state
//	libp2p_resilience_trackers{state}                 managed trackers per state
//
// Collectors already registered with the same names are reused, so several
// managers in one process share the metrics.
func NewMetricsTracer(opts ...MetricsOption) (MetricsTracer, error) {
	cfg, err := promutil.Apply("resilience", opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "libp2p", Subsystem: "resilience", Name: "attempts_total",
		Help: "Connection attempts by outcome.",
	}, []string{"outcome"})
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "libp2p", Subsystem: "resilience", Name: "retries_total",
		Help: "Retries scheduled after a failed attempt.",
	})
	delay := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "libp2p", Subsystem: "resilience", Name: "retry_delay_seconds",
		Help:    "Delay before each scheduled retry.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64},
	})
	exhausted := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "libp2p", Subsystem: "resilience", Name: "exhausted_total",
		Help: "Retry loops that used every attempt without success.",
	})
	transitions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "libp2p", Subsystem: "resilience", Name: "tracker_transitions_total",
		Help: "Tracker state changes, by the state entered.",
	}, []string{"state"})
	trackers := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "libp2p", Subsystem: "resilience", Name: "trackers",
		Help: "Managed trackers per state.",
	}, []string{"state"})

	if attempts, err = promutil.Register(cfg.Reg, attempts); err != nil {
		return nil, err
	}
	if retries, err = promutil.Register(cfg.Reg, retries); err != nil {
		return nil, err
	}
	if delay, err = promutil.Register(cfg.Reg, delay); err != nil {
		return nil, err
	}
	if exhausted, err = promutil.Register(cfg.Reg, exhausted); err != nil {
		return nil, err
	}
	if transitions, err = promutil.Register(cfg.Reg, transitions); err != nil {
		return nil, err
	}
	if trackers, err = promutil.Register(cfg.Reg, trackers); err != nil {
		return nil, err
	}

	t := &metricsTracer{retries: retries, delay: delay, exhausted: exhausted}
	for o := range outcomeCount {
		t.attempts[o] = attempts.WithLabelValues(o.String())
	}
	for s := range stateCount {
		t.entered[s] = transitions.WithLabelValues(s.String())
		t.trackers[s] = trackers.WithLabelValues(s.String())
	}
	return t, nil
}

func (t *metricsTracer) AttemptCompleted(o Outcome) {
	if o < outcomeCount {
		t.attempts[o].Inc()
	}
}

func (t *metricsTracer) RetryScheduled(d time.Duration) {
	t.retries.Inc()
	t.delay.Observe(d.Seconds())
}

func (t *metricsTracer) RetriesExhausted() { t.exhausted.Inc() }

func (t *metricsTracer) TrackerStateChanged(from, to ConnectionState) {
	if from < stateCount && to < stateCount {
		t.entered[to].Inc()
		t.trackers[from].Dec()
		t.trackers[to].Inc()
	}
}

func (t *metricsTracer) TrackerCreated() { t.trackers[Idle].Inc() }

func (t *metricsTracer) TrackerRemoved(last ConnectionState) {
	if last < stateCount {
		t.trackers[last].Dec()
	}
}

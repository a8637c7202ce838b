package healthmon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/internal/promutil"
)

// MetricsTracer receives what the monitor does. Implementations must be safe for
// concurrent use and cheap. A nil MetricsTracer turns metrics off.
//
// CheckCompleted and StatusChanged are called one check at a time, in the order of
// the checks (a check that calls them holds up the next one), so the last
// StatusChanged is always the reported status. They may call the Monitor's
// IsHealthy, LastReport, Subscribe and Unsubscribe but not CheckHealth, which
// would wait for the check that called them.
type MetricsTracer interface {
	// CheckCompleted is called after every check with the observed status and
	// the number of connected routing-table peers.
	CheckCompleted(observed Status, tablePeersConnected int)
	// StatusChanged is called when the reported status changes.
	StatusChanged(from, to Status)
	// ProbeCompleted is called when a Recoverer.Probe call returns.
	ProbeCompleted(ok bool)
	// RecoveryStarted is called when the monitor calls Recoverer.Recover.
	RecoveryStarted(trigger Trigger)
	// RecoveryCompleted is called when a Recoverer.Recover call returns; ok is
	// true when it returned nil or was cancelled because the node was healthy.
	RecoveryCompleted(ok bool)
}

const statusCount = int(Healthy) + 1
const triggerCount = int(TriggerConnection) + 1

type metricsTracer struct {
	checks      prometheus.Counter
	tablePeers  prometheus.Gauge
	status      [statusCount]prometheus.Gauge
	changes     [statusCount]prometheus.Counter
	probes      [2]prometheus.Counter // [failed, ok]
	started     [triggerCount]prometheus.Counter
	completions [2]prometheus.Counter
}

// MetricsOption configures NewMetricsTracer. A nil MetricsOption is ignored.
type MetricsOption = promutil.Option

// WithRegisterer registers the metrics with reg. Default:
// prometheus.DefaultRegisterer. reg must not be nil.
func WithRegisterer(reg prometheus.Registerer) MetricsOption { return promutil.WithRegisterer(reg) }

// NewMetricsTracer returns a MetricsTracer exporting Prometheus metrics:
//
//	libp2p_resilience_healthmon_checks_total                          checks run
//	libp2p_resilience_healthmon_table_peers_connected                 connected routing-table peers at the last check
//	libp2p_resilience_healthmon_status{status}                        1 for the reported status, 0 for the others
//	libp2p_resilience_healthmon_status_changes_total{status}          reported status changes, by the status entered
//	libp2p_resilience_healthmon_probes_total{result}                  probes by result (ok, failed)
//	libp2p_resilience_healthmon_recoveries_started_total{trigger}     recoveries by trigger (probe, connection)
//	libp2p_resilience_healthmon_recoveries_completed_total{result}    recoveries by result (ok, failed)
//
// Collectors already registered under the same names are reused, so several
// monitors in one process share them: the counters add up, but the two gauges
// (table_peers_connected, status) show whichever monitor checked last. A
// process that runs several monitors gives each its own registerer, e.g.
// prometheus.WrapRegistererWith(prometheus.Labels{"node": name}, reg).
func NewMetricsTracer(opts ...MetricsOption) (MetricsTracer, error) {
	cfg, err := promutil.Apply("healthmon", opts)
	if err != nil {
		return nil, err
	}
	opts2 := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "libp2p", Subsystem: "resilience_healthmon", Name: name, Help: help}
	}
	checks := prometheus.NewCounter(prometheus.CounterOpts(opts2("checks_total", "Health checks run.")))
	tablePeers := prometheus.NewGauge(prometheus.GaugeOpts(opts2("table_peers_connected",
		"Connected routing-table peers at the last check.")))
	status := prometheus.NewGaugeVec(prometheus.GaugeOpts(opts2("status",
		"1 for the reported health status, 0 for the others.")), []string{"status"})
	changes := prometheus.NewCounterVec(prometheus.CounterOpts(opts2("status_changes_total",
		"Reported health status changes, by the status entered.")), []string{"status"})
	probes := prometheus.NewCounterVec(prometheus.CounterOpts(opts2("probes_total",
		"Recovery probes by result.")), []string{"result"})
	started := prometheus.NewCounterVec(prometheus.CounterOpts(opts2("recoveries_started_total",
		"Recoveries started, by trigger.")), []string{"trigger"})
	completed := prometheus.NewCounterVec(prometheus.CounterOpts(opts2("recoveries_completed_total",
		"Recoveries completed, by result.")), []string{"result"})

	if checks, err = promutil.Register(cfg.Reg, checks); err != nil {
		return nil, err
	}
	if tablePeers, err = promutil.Register(cfg.Reg, tablePeers); err != nil {
		return nil, err
	}
	if status, err = promutil.Register(cfg.Reg, status); err != nil {
		return nil, err
	}
	if changes, err = promutil.Register(cfg.Reg, changes); err != nil {
		return nil, err
	}
	if probes, err = promutil.Register(cfg.Reg, probes); err != nil {
		return nil, err
	}
	if started, err = promutil.Register(cfg.Reg, started); err != nil {
		return nil, err
	}
	if completed, err = promutil.Register(cfg.Reg, completed); err != nil {
		return nil, err
	}

	t := &metricsTracer{checks: checks, tablePeers: tablePeers}
	for s := range statusCount {
		t.status[s] = status.WithLabelValues(Status(s).String())
		t.changes[s] = changes.WithLabelValues(Status(s).String())
	}
	for i, r := range []string{"failed", "ok"} {
		t.probes[i] = probes.WithLabelValues(r)
		t.completions[i] = completed.WithLabelValues(r)
	}
	for tr := TriggerProbe; int(tr) < triggerCount; tr++ {
		t.started[tr] = started.WithLabelValues(tr.String())
	}
	return t, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t *metricsTracer) CheckCompleted(_ Status, tablePeersConnected int) {
	t.checks.Inc()
	t.tablePeers.Set(float64(tablePeersConnected))
}

func (t *metricsTracer) StatusChanged(from, to Status) {
	if int(to) < 0 || int(to) >= statusCount {
		return
	}
	for s := range t.status {
		v := 0.0
		if s == int(to) {
			v = 1
		}
		t.status[s].Set(v)
	}
	t.changes[to].Inc()
}

func (t *metricsTracer) ProbeCompleted(ok bool) { t.probes[b2i(ok)].Inc() }

func (t *metricsTracer) RecoveryStarted(trigger Trigger) {
	if trigger > 0 && int(trigger) < triggerCount {
		t.started[trigger].Inc()
	}
}

func (t *metricsTracer) RecoveryCompleted(ok bool) { t.completions[b2i(ok)].Inc() }

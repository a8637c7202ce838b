package healthmon

import (
	"fmt"
	"runtime"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/netwatch"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// Defaults of the options.
const (
	// DefaultMinPeers is the routing-table peers (connected) a healthy node has (WithMinPeers).
	DefaultMinPeers = 4
	// DefaultCheckInterval is the time between periodic checks (WithCheckInterval).
	DefaultCheckInterval = 10 * time.Second
	// DefaultProbeInterval is the first gap between probes of an outage, and
	// the least between two probes without a network signal (WithProbeInterval).
	DefaultProbeInterval = 2 * time.Second
	// DefaultMaxProbeInterval caps the probe gap, which grows 1.5x with each
	// failed probe (WithProbeInterval): 15 probe dials a minute in a long
	// outage, under half of kubo's bootstrapper (every bootstrap and backup
	// peer, up to 20 dials, every 30 s), while the network's return is
	// noticed 2 s later on average.
	DefaultMaxProbeInterval = 4 * time.Second
	// DefaultProbeTimeout bounds one Recoverer.Probe call (WithProbeTimeout).
	DefaultProbeTimeout = 10 * time.Second
	// DefaultRecoverTimeout bounds one Recoverer.Recover call (WithRecoverTimeout).
	DefaultRecoverTimeout = time.Minute
	// DefaultHealthyFor is how long the table must stay healthy before Healthy is
	// reported again (WithHysteresis).
	DefaultHealthyFor = time.Second
	// DefaultMinDwell is the minimum time before the reported status may reverse
	// direction (WithHysteresis).
	DefaultMinDwell = 5 * time.Second
	// DefaultRecoverBackoff is the first wait after a recovery that did not make
	// the node healthy (WithRecoverBackoff); it doubles after each such recovery.
	DefaultRecoverBackoff = 5 * time.Second
	// DefaultMaxRecoverBackoff caps that wait (WithRecoverBackoff).
	DefaultMaxRecoverBackoff = time.Minute
)

// Option configures New. Options are applied in order; an invalid one makes New
// fail with an error that names it (and wraps ErrInvalidOption).
type Option func(*config) error

type config struct {
	minPeers          int
	checkInterval     time.Duration
	probeInterval     time.Duration
	maxProbeInterval  time.Duration
	probeTimeout      time.Duration
	recoverTimeout    time.Duration
	recoverBackoff    time.Duration
	maxRecoverBackoff time.Duration
	healthyFor        time.Duration
	minDwell          time.Duration
	recoverer         Recoverer
	manager           *resilience.ConnectionManager
	tracer            MetricsTracer
	netWatch          bool
	netChanges        <-chan netwatch.Change
	netWatchOpts      []netwatch.Option
}

func defaultConfig() config {
	return config{
		minPeers:          DefaultMinPeers,
		checkInterval:     DefaultCheckInterval,
		probeInterval:     DefaultProbeInterval,
		maxProbeInterval:  DefaultMaxProbeInterval,
		probeTimeout:      DefaultProbeTimeout,
		recoverTimeout:    DefaultRecoverTimeout,
		recoverBackoff:    DefaultRecoverBackoff,
		maxRecoverBackoff: DefaultMaxRecoverBackoff,
		healthyFor:        DefaultHealthyFor,
		minDwell:          DefaultMinDwell,
		netWatch:          runtime.GOOS == "linux",
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

// WithMinPeers sets how many routing-table peers the host must be connected to for
// the node to be Healthy. Default DefaultMinPeers (4); n must be at least 1.
func WithMinPeers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return invalid("WithMinPeers(%d): n must be at least 1", n)
		}
		c.minPeers = n
		return nil
	}
}

// WithCheckInterval sets the time between periodic checks. Default
// DefaultCheckInterval (10 s); must be positive. Events (connections, address and
// kernel network changes) trigger extra checks at once.
func WithCheckInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithCheckInterval(%v): must be positive", d)
		}
		c.checkInterval = d
		return nil
	}
}

// WithProbeInterval sets the probe cadence while the node is not healthy: the
// first gap between probes is d, each failed probe makes the next gap 1.5x
// longer up to maxGap (every gap ±10%), so a long outage costs few dials. A
// local network change (kernel link up, address added, default route back, wake
// from sleep, local addresses or reachability changed) snaps the gap back to d
// and probes at once; of the signals within one maxGap only the first 3 probe at
// once (a flapping link). Without signals probes are at least d apart, and a new
// outage right after a healthy spell waits for d too. Defaults:
// DefaultProbeInterval (2 s) and DefaultMaxProbeInterval (4 s): gaps of 2, 3,
// 4, 4, ... s, 15 probes a minute in a long outage. d must be positive and
// maxGap >= d.
func WithProbeInterval(d, maxGap time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || maxGap < d {
			return invalid("WithProbeInterval(%v, %v): d must be positive and maxGap >= d", d, maxGap)
		}
		c.probeInterval, c.maxProbeInterval = d, maxGap
		return nil
	}
}

// WithProbeTimeout bounds each Recoverer.Probe call. Default DefaultProbeTimeout
// (10 s); must be positive.
func WithProbeTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithProbeTimeout(%v): must be positive", d)
		}
		c.probeTimeout = d
		return nil
	}
}

// WithRecoverTimeout bounds each Recoverer.Recover call. Default
// DefaultRecoverTimeout (1 min); must be positive. A Recover still running when a
// check finds the node healthy is cancelled then.
func WithRecoverTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("WithRecoverTimeout(%v): must be positive", d)
		}
		c.recoverTimeout = d
		return nil
	}
}

// WithRecoverBackoff spaces recoveries that do not make the node healthy (say, the
// network works but has too few DHT peers): after such a recovery no probe and no
// recovery runs for first, then 2*first, 4*first, ... up to max. A local network
// change lifts the wait; one during the recovery means no wait after it. Defaults
// DefaultRecoverBackoff (5 s) and
// DefaultMaxRecoverBackoff (1 min); first must be positive and max >= first.
func WithRecoverBackoff(first, max time.Duration) Option {
	return func(c *config) error {
		if first <= 0 {
			return invalid("WithRecoverBackoff: first %v must be positive", first)
		}
		if max < first {
			return invalid("WithRecoverBackoff: max %v is below first %v", max, first)
		}
		c.recoverBackoff, c.maxRecoverBackoff = first, max
		return nil
	}
}

// WithHysteresis damps the reported status (Status in reports, IsHealthy,
// subscriptions and EvtHealthChanged); recovery always acts on the latest check.
//
//   - healthyFor: a non-healthy monitor reports Healthy only after every check for
//     healthyFor found the node healthy (the monitor checks again when healthyFor
//     has passed) — except at the first healthy check after a loss that was
//     reported at least minDwell ago (no healthy check in between): the table
//     refilled from a state it had just lost, a recovery, not a flap, and
//     Healthy is reported at once. 0 reports Healthy at the first healthy check. Default
//     DefaultHealthyFor (1 s).
//   - minDwell: the reported status never reverses direction (gets better after
//     getting worse, or worse after getting better) within minDwell of the
//     previous change; such a change is reported when minDwell has passed, if the
//     check then still calls for it. Changes that continue in the same direction
//     (Healthy -> Degraded -> Unhealthy, or back up) are not held. 0 = no
//     minimum. Default DefaultMinDwell (5 s).
//
// So a flapping link makes the reported status change at most twice per minDwell.
// Worse statuses are reported at the first check that finds them unless that is
// a reversal. Both durations must be >= 0.
func WithHysteresis(healthyFor, minDwell time.Duration) Option {
	return func(c *config) error {
		if healthyFor < 0 {
			return invalid("WithHysteresis: healthyFor %v is negative", healthyFor)
		}
		if minDwell < 0 {
			return invalid("WithHysteresis: minDwell %v is negative", minDwell)
		}
		c.healthyFor, c.minDwell = healthyFor, minDwell
		return nil
	}
}

// WithRecoverer makes the monitor drive recovery through r while the node is not
// healthy (see Recoverer). Default: none; the monitor then only reports. r must
// not be nil.
func WithRecoverer(r Recoverer) Option {
	return func(c *config) error {
		if r == nil {
			return invalid("WithRecoverer: r is nil")
		}
		c.recoverer = r
		return nil
	}
}

// WithManager takes FailedConnections and RecoveringConnections of each report
// from m (the ConnectionManager the dialer records its trackers in). Default:
// none; both counts are then 0. m must not be nil.
func WithManager(m *resilience.ConnectionManager) Option {
	return func(c *config) error {
		if m == nil {
			return invalid("WithManager: m is nil")
		}
		c.manager = m
		return nil
	}
}

// WithMetricsTracer reports checks, status changes, probes and recoveries to t
// (NewMetricsTracer exports them to Prometheus). Default nil: metrics off.
func WithMetricsTracer(t MetricsTracer) Option {
	return func(c *config) error {
		c.tracer = t
		return nil
	}
}

// WithNetWatch turns watching the host's network (a netwatch.Watcher the monitor
// starts on the host's event bus, which then also carries netwatch.EvtNetworkChanged)
// on or off. Default: on on Linux, off elsewhere. When the watcher cannot start the
// monitor logs it and runs without.
func WithNetWatch(on bool) Option {
	return func(c *config) error {
		c.netWatch = on
		return nil
	}
}

// WithNetWatchOptions passes opts to netwatch.New (for example netwatch.WithNetNS).
// Default: none. Has no effect while net watching is off or WithNetChanges is set.
func WithNetWatchOptions(opts ...netwatch.Option) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return invalid("WithNetWatchOptions: opts[%d] is nil", i)
			}
		}
		c.netWatchOpts = append(c.netWatchOpts, opts...)
		return nil
	}
}

// WithNetChanges makes the monitor read network changes from ch instead of
// watching the network itself: for callers with a watcher of their own (pass
// its Changes()), and for tests. It turns net watching on. The monitor stops reading when ch is closed; it
// never closes ch. Default: none. ch must not be nil.
func WithNetChanges(ch <-chan netwatch.Change) Option {
	return func(c *config) error {
		if ch == nil {
			return invalid("WithNetChanges: ch is nil")
		}
		c.netChanges, c.netWatch = ch, true
		return nil
	}
}

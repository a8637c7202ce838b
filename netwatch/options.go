package netwatch

import (
	"fmt"
	"time"

	"github.com/vishvananda/netns"
)

const (
	// DefaultBuffer is how many unread changes [Watcher.Changes] holds before the
	// oldest is dropped.
	DefaultBuffer = 64
	// DefaultPollInterval is how often the polling fallback lists the interfaces.
	DefaultPollInterval = 2 * time.Second
	// DefaultWakeCheck is how often the watcher compares the wall clock with the
	// monotonic clock (Tailscale's netmon uses the same 15 s). A check that finds the
	// wall clock more than half an interval ahead (a gap of over 22.5 s between two
	// checks 15 s apart) reports Woke.
	DefaultWakeCheck = 15 * time.Second
	// DefaultDamping is the window after an [EvtNetworkChanged] in which further
	// changes are collected into one event.
	DefaultDamping = time.Second
)

// Option configures [New].
type Option func(*config) error

type config struct {
	ns        netns.NsHandle // netns.None(): the namespace of the calling thread
	buffer    int
	poll      time.Duration // > 0: poll at this interval instead of using netlink
	wakeCheck time.Duration // 0: off
	damping   time.Duration
	wall      func() time.Time // wall-clock time without a monotonic reading

	// Test seams (unexported).
	recvBuf    int                          // forced netlink socket receive buffer in bytes; 0 = kernel default
	update     func()                       // called on the netlink goroutine before each update is handled
	interfaces func() ([]ifaceState, error) // the polling source's lister; nil = net.Interfaces
	netlinkErr error                        // non-nil: pretend netlink is unavailable with this error
}

func defaultConfig() config {
	return config{
		ns:        netns.None(),
		buffer:    DefaultBuffer,
		wakeCheck: DefaultWakeCheck,
		damping:   DefaultDamping,
		wall:      func() time.Time { return time.Now().Round(0) },
	}
}

func newConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for i, opt := range opts {
		if opt == nil {
			return cfg, fmt.Errorf("netwatch.New: option %d is nil", i)
		}
		if err := opt(&cfg); err != nil {
			return cfg, fmt.Errorf("netwatch.New: %w", err)
		}
	}
	return cfg, nil
}

// WithNetNS watches the network namespace ns (default: the process's network
// namespace, as seen by the thread calling New; code that moved a locked thread into
// another namespace should pass that namespace here). ns must be an open handle; the
// watcher keeps its own duplicate until Close, so the caller may close ns at any
// time. Entering ns needs CAP_SYS_ADMIN; the watcher does that on short-lived
// threads of its own, never on the calling goroutine's thread. Linux only.
func WithNetNS(ns netns.NsHandle) Option {
	return func(c *config) error {
		if !ns.IsOpen() {
			return fmt.Errorf("WithNetNS: ns %d is not an open namespace handle", int(ns))
		}
		c.ns = ns
		return nil
	}
}

// WithBuffer sets how many unread changes [Watcher.Changes] holds before the oldest
// is dropped (default [DefaultBuffer] changes; n must be at least 1).
func WithBuffer(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithBuffer: n must be at least 1, got %d", n)
		}
		c.buffer = n
		return nil
	}
}

// WithPolling makes the watcher list the interfaces and their addresses every
// interval and report the differences, instead of subscribing to netlink. Without
// this option the watcher polls only where netlink is unavailable (other operating
// systems, or a sandbox that denies netlink sockets), every [DefaultPollInterval].
// Polling sees links and addresses, not routes. interval must be positive.
func WithPolling(interval time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 {
			return fmt.Errorf("WithPolling: interval must be positive, got %v", interval)
		}
		c.poll = interval
		return nil
	}
}

// WithWakeCheck sets how often the watcher compares the wall clock with the
// monotonic clock to notice that the machine slept (default [DefaultWakeCheck]); a
// check that finds the wall clock more than interval/2 further ahead than the
// monotonic clock reports Woke. 0 turns sleep detection off; negative is an error.
func WithWakeCheck(interval time.Duration) Option {
	return func(c *config) error {
		if interval < 0 {
			return fmt.Errorf("WithWakeCheck: interval must not be negative, got %v", interval)
		}
		c.wakeCheck = interval
		return nil
	}
}

// WithDamping sets the window after an [EvtNetworkChanged] in which further changes
// are collected into one event, emitted when the window ends (default
// [DefaultDamping]). 0 emits one event per change. The first change after a quiet
// window is always emitted at once. Changes on [Watcher.Changes] are never damped.
// d must not be negative.
func WithDamping(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithDamping: d must not be negative, got %v", d)
		}
		c.damping = d
		return nil
	}
}

// WithWallClock replaces the wall clock the sleep detection reads (default
// time.Now().Round(0): the wall clock without its monotonic reading). now must
// return times without a monotonic reading; the monotonic side is the time
// package's. Tests use it to simulate a suspended machine, whose wall clock jumps
// while the monotonic clock stands still.
func WithWallClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("WithWallClock: now is nil")
		}
		c.wall = now
		return nil
	}
}

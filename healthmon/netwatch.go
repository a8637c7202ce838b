package healthmon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netns"
)

// DefaultNetChangeBuffer is how many unread changes [NetWatcher.Changes] holds before it drops
// the oldest one.
const DefaultNetChangeBuffer = 64

// ErrNetWatchUnsupported is returned by [WatchNetwork] on platforms without a kernel
// network-change watcher (everything but Linux).
var ErrNetWatchUnsupported = errors.New("healthmon: watching kernel network changes is not supported on this platform")

// NetChangeKind says what a [NetChange] describes.
type NetChangeKind int

const (
	// LinkChanged: a link's up/running state flipped; NetChange.Up holds the new state.
	LinkChanged NetChangeKind = iota + 1
	// AddrAdded: a usable, non-link-local address appeared on a link.
	AddrAdded
	// AddrRemoved: a previously reported address went away.
	AddrRemoved
)

// String returns the constant's name, e.g. "LinkChanged".
func (k NetChangeKind) String() string {
	switch k {
	case LinkChanged:
		return "LinkChanged"
	case AddrAdded:
		return "AddrAdded"
	case AddrRemoved:
		return "AddrRemoved"
	default:
		return fmt.Sprintf("NetChangeKind(%d)", int(k))
	}
}

// NetChange describes one kernel network change.
type NetChange struct {
	// Kind says what changed.
	Kind NetChangeKind
	// Link is the interface name, e.g. "eth0".
	Link string
	// Up is the new state of a LinkChanged link: administratively up and running
	// (carrier present, operational state up or unknown). False for address changes.
	Up bool
	// Addr is the address and its prefix length (e.g. 10.0.0.5/24) of an AddrAdded or
	// AddrRemoved change; the zero Prefix for link changes.
	Addr netip.Prefix
}

// String renders the change for logs, e.g. "eth0 up" or "eth0 added 10.0.0.5/24".
func (c NetChange) String() string {
	switch c.Kind {
	case LinkChanged:
		if c.Up {
			return c.Link + " up"
		}
		return c.Link + " down"
	case AddrAdded:
		return c.Link + " added " + c.Addr.String()
	case AddrRemoved:
		return c.Link + " removed " + c.Addr.String()
	default:
		return fmt.Sprintf("%s %s %v %s", c.Kind, c.Link, c.Up, c.Addr)
	}
}

// NetWatchOption configures [WatchNetwork].
type NetWatchOption func(*netWatchConfig) error

type netWatchConfig struct {
	ns     netns.NsHandle // netns.None(): the namespace of the calling thread
	buffer int

	// Test seams (unexported).
	recvBuf int    // forced netlink socket receive buffer in bytes; 0 = kernel default
	update  func() // called on the watcher goroutine before each netlink update is handled
}

func defaultNetWatchConfig() netWatchConfig {
	return netWatchConfig{ns: netns.None(), buffer: DefaultNetChangeBuffer}
}

func newNetWatchConfig(opts []NetWatchOption) (netWatchConfig, error) {
	cfg := defaultNetWatchConfig()
	for i, opt := range opts {
		if opt == nil {
			return cfg, fmt.Errorf("WatchNetwork: option %d is nil", i)
		}
		if err := opt(&cfg); err != nil {
			return cfg, fmt.Errorf("WatchNetwork: %w", err)
		}
	}
	return cfg, nil
}

// WithNetNS watches the network namespace ns (default: the process's network namespace,
// as seen by the thread calling WatchNetwork; code that moved a locked thread into another
// namespace should pass that namespace here). ns must be an open handle; the watcher keeps
// its own duplicate until Close, so the caller may close ns at any time. Entering ns needs
// CAP_SYS_ADMIN; the watcher does that on short-lived threads of its own, never on the
// calling goroutine's thread.
func WithNetNS(ns netns.NsHandle) NetWatchOption {
	return func(c *netWatchConfig) error {
		if !ns.IsOpen() {
			return fmt.Errorf("WithNetNS: ns %d is not an open namespace handle", int(ns))
		}
		c.ns = ns
		return nil
	}
}

// WithNetChangeBuffer sets how many unread changes [NetWatcher.Changes] holds before the
// oldest is dropped (default [DefaultNetChangeBuffer] changes; n must be at least 1).
func WithNetChangeBuffer(n int) NetWatchOption {
	return func(c *netWatchConfig) error {
		if n < 1 {
			return fmt.Errorf("WithNetChangeBuffer: n must be at least 1, got %d", n)
		}
		c.buffer = n
		return nil
	}
}

// withRecvBuffer forces the netlink socket receive buffer to bytes (tests: provoke ENOBUFS).
func withRecvBuffer(bytes int) NetWatchOption {
	return func(c *netWatchConfig) error {
		if bytes < 1 {
			return fmt.Errorf("withRecvBuffer: bytes must be at least 1, got %d", bytes)
		}
		c.recvBuf = bytes
		return nil
	}
}

// withUpdateHook runs f on the watcher goroutine before each link or address update
// (tests: stall it).
func withUpdateHook(f func()) NetWatchOption {
	return func(c *netWatchConfig) error {
		c.update = f
		return nil
	}
}

// NetWatcher reports kernel link and address changes on [NetWatcher.Changes]. Only real
// changes are reported: a link's up/running state flipping (not the many netlink updates
// that change nothing), and non-link-local addresses appearing or going away; the loopback
// link and its addresses are ignored. The state present when watching starts is the
// baseline and is not reported.
//
// A reader that falls behind never stalls the watcher: when the buffer is full the oldest
// unread change is dropped (counted by [NetWatcher.Dropped]), so the channel always holds
// the newest changes. If the kernel itself drops notifications (socket buffer overrun),
// the watcher resubscribes, compares the kernel's current state with what it last knew and
// reports the difference.
//
// NetWatcher is safe for concurrent use.
type NetWatcher struct {
	out     chan NetChange
	dropped atomic.Uint64
	resyncs atomic.Uint64 // times the watcher resubscribed and re-read the kernel state

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newNetWatcher(buffer int) *NetWatcher {
	return &NetWatcher{
		out:  make(chan NetChange, buffer),
		done: make(chan struct{}),
	}
}

// Changes returns the channel of changes. It is buffered (see [WithNetChangeBuffer]) and
// closed once Close has stopped the watcher. Every call returns the same channel.
func (w *NetWatcher) Changes() <-chan NetChange { return w.out }

// Dropped returns how many changes were dropped because the reader fell behind.
func (w *NetWatcher) Dropped() uint64 { return w.dropped.Load() }

// Close stops the watcher: it closes the netlink sockets, waits for every goroutine the
// watcher started, and closes the Changes channel. Changes not yet read stay readable.
// Close is idempotent and safe to call concurrently; it always returns nil.
func (w *NetWatcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.done)
		w.wg.Wait()
	})
	return nil
}

// emit queues c, dropping the oldest unread change when the buffer is full. Only the
// watcher goroutine sends, so after making room the next send always succeeds.
func (w *NetWatcher) emit(c NetChange) {
	for {
		select {
		case w.out <- c:
			log.Debugw("network change", "change", c.String())
			return
		default:
		}
		select {
		case <-w.out:
			w.dropped.Add(1)
		default: // a reader made room meanwhile
		}
	}
}

// prefixFromIPNet converts a netlink address to a netip.Prefix (IPv4 unmapped).
func prefixFromIPNet(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	switch {
	case bits == 0: // non-canonical or missing mask: treat as a host address
		ones = a.BitLen()
	case a.Is4() && bits == 128:
		ones -= 96
	}
	p := netip.PrefixFrom(a, ones)
	return p, p.IsValid()
}

// reportableAddr reports whether an address change is worth reporting: not loopback,
// link-local, multicast or unspecified.
func reportableAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!a.IsMulticast() && !a.IsUnspecified()
}

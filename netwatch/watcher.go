package netwatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/event"
)

var log = logging.Logger("resilience/netwatch")

// errNetlinkUnsupported: this platform has no netlink; the watcher polls.
var errNetlinkUnsupported = errors.New("netlink is not available on this platform")

// Watcher reports changes of the host's network on [Watcher.Changes] and, given an
// event bus, as [EvtNetworkChanged] on it. Only real changes are reported: a link's
// up/running state flipping (not the many updates that change nothing), usable
// addresses appearing or going away, default routes appearing or going away, and
// the machine waking from sleep; the loopback link and its addresses are ignored.
// The state present when watching starts is the baseline and is not reported.
//
// A reader that falls behind never stalls the watcher: when the buffer is full the
// oldest unread change is dropped (counted by [Watcher.Dropped]), so the channel
// always holds the newest changes. If the kernel itself drops notifications (socket
// buffer overrun), the watcher resubscribes, compares the kernel's current state with
// what it last knew and reports the difference.
//
// Watcher is safe for concurrent use.
type Watcher struct {
	cfg     config
	polling bool

	mu      sync.Mutex // serialises signal: one sender at a time
	out     chan Change
	dropped atomic.Uint64
	resyncs atomic.Uint64 // times the netlink source resubscribed and re-read the kernel state
	pub     *publisher    // nil without a bus

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New starts watching the host's network: kernel link, address and default-route
// changes over netlink (Linux), or, where netlink is unavailable, the interfaces'
// addresses polled every [DefaultPollInterval]; and the clocks, for sleep. Close
// the returned watcher to stop it.
//
// When bus is not nil (normally the host's, h.EventBus()), the watcher emits
// [EvtNetworkChanged] on it. Start one watcher per bus (a second would report
// every change twice): Changes goes to the one component that acts on every change
// (each change is received once), everyone else subscribes to the event. Subscribing to netlink needs no privileges in the
// caller's own namespace; watching another namespace ([WithNetNS]) needs the rights
// to enter it.
func New(bus event.Bus, opts ...Option) (*Watcher, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		cfg:  cfg,
		out:  make(chan Change, cfg.buffer),
		done: make(chan struct{}),
	}
	if bus != nil {
		em, err := bus.Emitter(new(EvtNetworkChanged))
		if err != nil {
			return nil, fmt.Errorf("netwatch.New: emitter for EvtNetworkChanged: %w", err)
		}
		w.pub = newPublisher(em, cfg.damping)
	}
	var start func() error
	if cfg.poll > 0 {
		start = func() error { return w.startPolling(cfg.poll) }
	} else {
		start = func() error {
			err := w.startNetlink()
			if err == nil {
				return nil
			}
			log.Infow("netlink unavailable: polling the interfaces instead", "err", err, "interval", DefaultPollInterval)
			return w.startPolling(DefaultPollInterval)
		}
	}
	if err := start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("netwatch.New: %w", err)
	}
	if cfg.wakeCheck > 0 {
		w.wg.Add(1)
		go w.watchClock()
	}
	if w.pub != nil {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.pub.run(w.done)
		}()
	}
	return w, nil
}

// Changes returns the channel of changes. Every change is delivered as soon as the
// watcher sees it, undamped. The channel is buffered (see [WithBuffer]) and closed
// once Close has stopped the watcher. Every call returns the same channel.
func (w *Watcher) Changes() <-chan Change { return w.out }

// Dropped returns how many changes were dropped from Changes because the reader fell behind.
func (w *Watcher) Dropped() uint64 { return w.dropped.Load() }

// Polling reports whether the watcher polls the interfaces instead of listening to
// netlink (asked for with [WithPolling], or netlink was unavailable).
func (w *Watcher) Polling() bool { return w.polling }

// Close stops the watcher: it closes the netlink sockets, waits for every goroutine
// the watcher started, closes the bus emitter and the Changes channel. Changes not
// yet read stay readable. Close is idempotent and safe to call concurrently; it
// always returns nil.
//
// libp2p's Emit blocks while a bus subscriber's buffer is full and cannot be
// interrupted, so a subscriber to EvtNetworkChanged that neither reads nor closes its
// subscription holds Close up until it does one of them.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.done)
		w.wg.Wait()
		if w.pub != nil {
			if err := w.pub.em.Close(); err != nil {
				log.Debugw("close emitter", "err", err)
			}
		}
		close(w.out)
	})
	return nil
}

// signal delivers c: on Changes, dropping the oldest unread change when the buffer
// is full, and to the bus publisher. It never blocks on a reader.
func (w *Watcher) signal(c Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	log.Debugw("network change", "change", c.String())
	for {
		select {
		case w.out <- c:
			if w.pub != nil {
				w.pub.add(c)
			}
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

// prefixFromIPNet converts an address with its mask to a netip.Prefix (IPv4 unmapped).
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

package dialer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

var log = logging.Logger("resilience/dialer")

// Host wraps a host.Host: Connect (and NewStream to a peer that is not
// connected) retries with the peer's profile, recording every attempt in the
// peer's tracker in a resilience.ConnectionManager; a notifiee keeps the trackers
// in step with the swarm's connections; kept peers are reconnected in the
// background. Everything else is delegated to the wrapped host.
//
// A Host is safe for concurrent use.
type Host struct {
	inner   host.Host
	cfg     config
	mgr     *resilience.ConnectionManager
	backoff *swarm.DialBackoff // nil when the network is not a *swarm.Swarm
	notif   *notifiee
	events  *notifier
	gate    *resilience.PriorityGate // admits every dial of the Host
	ipLimit *ipLimiter               // nil: off
	wake    chan struct{}            // capacity 1: WakeRounds asked for by the notifiee
	keys    *keyCache

	ctx    context.Context // ends with Close
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // dial workers, keep-alive goroutines and the wake loop

	mu        sync.Mutex // guards the fields below; never held across I/O
	closed    bool
	peers     map[peer.ID]*peerDials // the scheduler: one worker per peer with work
	profiles  map[peer.ID]resilience.RetryConfig
	bootstrap map[peer.ID]struct{}
	// kept is replaced (copy on write, under mu) and read without a lock by the
	// notifiee.
	kept atomic.Pointer[map[peer.ID]*keptPeer]

	closeOnce sync.Once
	closeErr  error
}

var _ host.Host = (*Host)(nil)

// Wrap returns a Host around h and registers its notifiee on h's network.
// Peers h is already connected to are recorded as Connected. Close the returned
// Host instead of h: it stops the Host's goroutines, unregisters the notifiee and
// then closes h (like routedhost).
func Wrap(h host.Host, opts ...Option) (*Host, error) {
	if h == nil {
		return nil, errors.New("dialer: Wrap: h must not be nil")
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("dialer: Wrap: opts[%d] is nil", i)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	mgr := cfg.manager
	if mgr == nil {
		var err error
		mgr, err = resilience.NewConnectionManager(resilience.WithDefaultConfig(cfg.defaultCfg))
		if err != nil {
			return nil, fmt.Errorf("dialer: Wrap: %w", err)
		}
	}
	var emitter event.Emitter
	if cfg.emitRetryEvents {
		var err error
		if emitter, err = h.EventBus().Emitter(new(EvtConnectRetry)); err != nil {
			return nil, fmt.Errorf("dialer: Wrap: EvtConnectRetry emitter: %w", err)
		}
	}
	gate, err := resilience.NewPriorityGate(cfg.maxDials)
	if err != nil {
		return nil, fmt.Errorf("dialer: Wrap: %w", err) // cannot happen: validated by the option
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	dh := &Host{
		inner:     h,
		cfg:       cfg,
		mgr:       mgr,
		gate:      gate,
		ipLimit:   newIPLimiter(cfg.ipDialRate, cfg.ipDialBurst),
		wake:      make(chan struct{}, 1),
		keys:      newKeyCache(),
		ctx:       ctx,
		cancel:    cancel,
		peers:     make(map[peer.ID]*peerDials),
		profiles:  make(map[peer.ID]resilience.RetryConfig),
		bootstrap: make(map[peer.ID]struct{}, len(cfg.bootstrapPeers)),
	}
	for _, id := range cfg.bootstrapPeers {
		dh.bootstrap[id] = struct{}{}
	}
	dh.kept.Store(&map[peer.ID]*keptPeer{})
	if b, ok := h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		dh.backoff = b.Backoff()
	}
	dh.events = newNotifier(cfg.onRetry, emitter, cfg.tracer)
	dh.notif = &notifiee{h: dh}
	h.Network().Notify(dh.notif)
	nw := h.Network()
	for _, p := range nw.Peers() {
		// Read under the tracker's lock, as the notifiee does: a disconnect
		// in between must not leave a stale Connected tracker behind.
		mgr.Modify(dh.keys.key(p), func(t *resilience.ConnectionTracker) {
			if nw.Connectedness(p) == network.Connected {
				markConnected(t)
			}
		})
	}
	dh.wg.Add(1)
	go dh.wakeLoop()
	return dh, nil
}

// Manager returns the ConnectionManager holding the Host's trackers.
func (h *Host) Manager() *resilience.ConnectionManager { return h.mgr }

// Unwrap returns the wrapped host. Dials made through it bypass the Host's retry
// policy and the dial scheduler, but its connections still update the trackers.
func (h *Host) Unwrap() host.Host { return h.inner }

// SetProfile sets the retry profile of one peer, overriding the default and the
// bootstrap profile. It takes effect at the peer's next retry round; a round in
// progress keeps its profile.
func (h *Host) SetProfile(id peer.ID, cfg resilience.RetryConfig) error {
	if id == "" {
		return fmt.Errorf("dialer: SetProfile: id: %w", peer.ErrEmptyPeerID)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dialer: SetProfile(%s): cfg: %w", id, err)
	}
	h.mu.Lock()
	h.profiles[id] = cfg
	h.mu.Unlock()
	return nil
}

// ClearProfile removes the profile SetProfile gave id; it uses the bootstrap or
// the default profile again from its next round.
func (h *Host) ClearProfile(id peer.ID) {
	h.mu.Lock()
	delete(h.profiles, id)
	h.mu.Unlock()
}

// AddBootstrapPeers registers bootstrap peers, which use the bootstrap profile
// (WithBootstrapConfig) unless SetProfile gave them another. Empty IDs are ignored.
func (h *Host) AddBootstrapPeers(ids ...peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if id != "" {
			h.bootstrap[id] = struct{}{}
		}
	}
}

// Profile returns the retry profile the next round for id will use: the one set
// with SetProfile, else the bootstrap profile for bootstrap peers, else the
// WebRTC profile (WithWebRTCConfig) for a peer whose only usable known
// addresses are /webrtc-direct (WebRTC runs its own ICE retries, so the Host
// retries less), else the default profile.
func (h *Host) Profile(id peer.ID) resilience.RetryConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.profileLocked(id)
}

func (h *Host) profileLocked(id peer.ID) resilience.RetryConfig {
	if cfg, ok := h.profiles[id]; ok {
		return cfg
	}
	if _, ok := h.bootstrap[id]; ok {
		return h.cfg.bootstrapCfg
	}
	if onlyWebRTCDirect(h.inner.Peerstore().Addrs(id)) {
		return h.cfg.webrtcCfg
	}
	return h.cfg.defaultCfg
}

// onlyWebRTCDirect reports whether every address a dial could use is
// /webrtc-direct (circuit addresses do not count), and there is one.
func onlyWebRTCDirect(addrs []ma.Multiaddr) bool {
	webrtc := 0
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_WEBRTC_DIRECT); err != nil {
			return false
		}
		webrtc++
	}
	return webrtc > 0
}

// Connect connects to pi, retrying with the peer's profile (see Profile):
//
//   - already connected: returns nil at once (like the wrapped host's Connect,
//     a limited connection counts only with network.WithAllowLimitedConn, and
//     network.WithForceDirectDial always dials);
//   - otherwise the request goes to the peer's dial scheduler (see Dial), which
//     runs one retry round (resilience.RetryTracked on the peer's tracker) for
//     every caller: n concurrent callers cause at most MaxAttempts dials, not n
//     times as many. A tracker left Failed, Exhausted or Retrying by an earlier
//     round starts over. Every caller's addresses are used from the next dial
//     on; the first caller's profile and context values (network.With...
//     options) apply to the round. Each caller's ctx is honoured: a caller
//     whose ctx ends returns at once with context.Cause(ctx) (joined with the
//     peer's last dial error); the round goes on while anyone waits;
//   - each dial takes a slot of the Host's dial gate (WithMaxConcurrentDials)
//     at the request's priority, and waits for room under the per-IP
//     connection rate limit (WithIPDialLimit); a refusal by that limit is not
//     counted against the peer;
//   - before each dial the swarm's dial backoff for the peer is cleared,
//     deliberately: the profile already spaced the attempts, and the swarm's
//     backoff (5 s and more, set by the previous failure) would otherwise turn the
//     scheduled attempt into an instant swarm.ErrDialBackoff. Dials made by other
//     code through the wrapped host keep the swarm's backoff;
//   - a permanent error (see Classify) stops the round after that attempt and is
//     returned marked with resilience.Permanent; the tracker is Failed. After
//     MaxAttempts failures the error matches resilience.ErrExhausted and the last
//     dial error.
func (h *Host) Connect(ctx context.Context, pi peer.AddrInfo) error {
	_, err := h.request(ctx, pi, request{prio: h.defaultPriority(pi.ID)}, "Connect")
	return err
}

// ConnectWithConfig is Connect with cfg as the profile of the round it starts
// (the peer's profile is unchanged). A call that joins a round already running
// uses that round's profile.
func (h *Host) ConnectWithConfig(ctx context.Context, pi peer.AddrInfo, cfg resilience.RetryConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dialer: ConnectWithConfig: cfg: %w", err)
	}
	_, err := h.request(ctx, pi, request{cfg: &cfg, prio: h.defaultPriority(pi.ID)}, "ConnectWithConfig")
	return err
}

// ConnectOnce is a probe: it returns the result of one dial to pi (none if
// already connected), marked with resilience.Permanent if Classify says so.
// Its caller schedules the next probe:
//
//   - a round of the peer that waits out its backoff is woken and its next dial
//     is the probe's (the scheduler never dials one peer twice at once); with no
//     round running the probe makes its own dial, which clears the swarm's dial
//     backoff first so that it really dials;
//   - a probe of its own is recorded in the peer's tracker but schedules
//     nothing: a failure leaves it Idle (or Failed, Exhausted), never Retrying.
//     An existing tracker keeps its config (a new one gets the peer's profile);
//   - a successful probe is evidence that the network works: it wakes every
//     round waiting out its backoff (WakeRounds);
//   - Close ends a dial in flight and waits for it: the call returns ErrClosed
//     (joined with the dial's error) and the attempt is recorded as canceled, not
//     as a failure of the peer, as when ctx ends.
func (h *Host) ConnectOnce(ctx context.Context, pi peer.AddrInfo) error {
	_, err := h.request(ctx, pi, request{probe: true, prio: h.defaultPriority(pi.ID)}, "ConnectOnce")
	return err
}

// NewStream opens a stream to p like the wrapped host, but a missing connection
// is made with Connect's retry policy first (unless ctx carries
// network.WithNoDial), using the addresses in the peerstore.
func (h *Host) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if nodial, _ := network.GetNoDial(ctx); !nodial {
		if err := h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return nil, err
		}
	}
	return h.inner.NewStream(ctx, p, pids...)
}

// Close stops every retry round, probe and reconnect goroutine (waiting for
// them), unregisters the notifiee, stops retry notifications and then closes
// the wrapped host. Calls still waiting end with ErrClosed. Close is idempotent
// and returns the wrapped host's Close error every time.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.cancel(ErrClosed) // runs, keep-alive goroutines and the wake loop
		h.inner.Network().StopNotify(h.notif)
		h.wg.Wait()
		h.events.close()
		h.closeErr = h.inner.Close()
	})
	return h.closeErr
}

func (h *Host) precheck(ctx context.Context, pi peer.AddrInfo, op string) error {
	if pi.ID == "" {
		return fmt.Errorf("dialer: %s: pi.ID: %w", op, peer.ErrEmptyPeerID)
	}
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// connectedFor reports whether the wrapped host's Connect would return at once,
// by the same rules.
func (h *Host) connectedFor(ctx context.Context, id peer.ID) bool {
	if forceDirect, _ := network.GetForceDirectDial(ctx); forceDirect {
		return false
	}
	c := h.inner.Network().Connectedness(id)
	allowLimited, _ := network.GetAllowLimitedConn(ctx)
	return c == network.Connected || (allowLimited && c == network.Limited)
}

func (h *Host) connected(id peer.ID) bool {
	return h.inner.Network().Connectedness(id) == network.Connected
}

func (h *Host) addAddrs(pi peer.AddrInfo) {
	if len(pi.Addrs) > 0 {
		h.inner.Peerstore().AddAddrs(pi.ID, pi.Addrs, peerstore.TempAddrTTL)
	}
}

// wakeLoop runs WakeRounds when the notifiee asks for it (an inbound
// connection: evidence that the network is back).
func (h *Host) wakeLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.wake:
			h.WakeRounds()
		}
	}
}

// clearBackoff removes the swarm's dial backoff of id (see Connect).
func (h *Host) clearBackoff(id peer.ID) {
	if h.backoff == nil {
		return
	}
	h.backoff.Clear(id)
	if h.cfg.tracer != nil {
		h.cfg.tracer.SwarmBackoffCleared()
	}
}

// dial makes one classified dial. It clears the swarm's backoff for the peer
// first; if the swarm still answers with its backoff (another dial through the
// wrapped host failed in between), it clears it and dials once more, never more.
// Permanent errors are returned marked with resilience.Permanent.
func (h *Host) dial(ctx context.Context, pi peer.AddrInfo) error {
	var err error
	class := ClassDialBackoff
	for try := 0; try < 2 && class == ClassDialBackoff && ctx.Err() == nil; try++ {
		h.clearBackoff(pi.ID)
		err = h.inner.Connect(ctx, pi)
		class = Classify(err)
		if h.cfg.tracer != nil {
			h.cfg.tracer.DialAttempted(class)
		}
	}
	if err == nil && class == ClassDialBackoff { // ctx ended before the first dial
		return context.Cause(ctx)
	}
	switch class {
	case ClassNone:
		log.Debugw("dial succeeded", "peer", pi.ID)
		return nil
	case ClassPermanent:
		log.Debugw("dial failed permanently", "peer", pi.ID, "err", err)
		if resilience.IsPermanent(err) {
			return err
		}
		return resilience.Permanent(err)
	default:
		// Transient, a leftover backoff, or a context error: RetryTracked and
		// ConnectOnce tell the caller's own cancellation apart from a deadline
		// inside libp2p by looking at the caller's ctx.
		log.Debugw("dial failed", "peer", pi.ID, "class", class, "err", err)
		return err
	}
}

// mergeAddrs returns a new slice with the addresses of a followed by those of b
// not in a.
func mergeAddrs(a, b []ma.Multiaddr) []ma.Multiaddr {
	out := append([]ma.Multiaddr(nil), a...)
	for _, x := range b {
		if !ma.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// Delegated methods.

// ID returns the wrapped host's peer ID.
func (h *Host) ID() peer.ID { return h.inner.ID() }

// Peerstore returns the wrapped host's peerstore.
func (h *Host) Peerstore() peerstore.Peerstore { return h.inner.Peerstore() }

// Addrs returns the wrapped host's listen addresses.
func (h *Host) Addrs() []ma.Multiaddr { return h.inner.Addrs() }

// Network returns the wrapped host's network. Dials made directly on it bypass
// the retry policy.
func (h *Host) Network() network.Network { return h.inner.Network() }

// Mux returns the wrapped host's protocol switch.
func (h *Host) Mux() protocol.Switch { return h.inner.Mux() }

// SetStreamHandler delegates to the wrapped host.
func (h *Host) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.inner.SetStreamHandler(pid, handler)
}

// SetStreamHandlerMatch delegates to the wrapped host.
func (h *Host) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.inner.SetStreamHandlerMatch(pid, m, handler)
}

// RemoveStreamHandler delegates to the wrapped host.
func (h *Host) RemoveStreamHandler(pid protocol.ID) { h.inner.RemoveStreamHandler(pid) }

// ConnManager returns the wrapped host's connection manager.
func (h *Host) ConnManager() connmgr.ConnManager { return h.inner.ConnManager() }

// EventBus returns the wrapped host's event bus, on which the Host emits
// EvtConnectRetry.
func (h *Host) EventBus() event.Bus { return h.inner.EventBus() }

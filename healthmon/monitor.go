package healthmon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/netwatch"
)

var log = logging.Logger("resilience/healthmon")

// Sentinel errors; check them with errors.Is.
var (
	// ErrInvalidOption marks an argument or option that New rejected.
	ErrInvalidOption = errors.New("healthmon: invalid option")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("healthmon: monitor closed")
)

// Monitor watches the routing table of a DHT node, reports its health and, with a
// Recoverer, drives recovery while the node is not healthy. See the package
// documentation for the flow.
//
// A Monitor is safe for concurrent use. New starts nothing; Start starts the
// checks, Close stops every goroutine the monitor started.
type Monitor struct {
	h   host.Host
	rt  bootstrap.RoutingTable
	cfg config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	lifeMu    sync.Mutex
	started   bool
	closed    bool
	closeOnce sync.Once

	// checkMu serializes checks, from reading the table to the tracer calls, so
	// the tracer sees status changes in order. It is taken before mu and held
	// while calling the table, the host, the manager and the tracer, so neither
	// may call CheckHealth from code the check calls.
	checkMu sync.Mutex
	// mu guards the fields below. It is never held while calling out (table,
	// host, manager, tracer), so a routing-table callback that runs under the
	// table's lock may call IsHealthy, LastReport, Subscribe and Unsubscribe.
	mu      sync.Mutex
	damp    damper
	last    HealthReport
	hasLast bool
	subs    map[chan HealthReport]struct{} // nil once closed

	kick     chan struct{}         // CheckHealth asks the loop to look again
	checking atomic.Bool           // checkConns runs
	emitCh   chan EvtHealthChanged // latest change not yet emitted on the bus
	emitter  event.Emitter
}

// New returns a Monitor of h, judging health on rt's peers (see Status; for a
// dual DHT, bootstrap.DualDHT: the union of its tables). It checks the
// options, creates the EvtHealthChanged emitter on h's event bus and starts
// nothing; call Start. Errors name the bad argument or option and wrap
// ErrInvalidOption.
func New(h host.Host, rt bootstrap.RoutingTable, opts ...Option) (*Monitor, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: New: h is nil", ErrInvalidOption)
	}
	if rt == nil {
		return nil, fmt.Errorf("%w: New: rt is nil", ErrInvalidOption)
	}
	cfg := defaultConfig()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: New: opts[%d] is nil", ErrInvalidOption, i)
		}
		if err := opt(&cfg); err != nil {
			return nil, fmt.Errorf("healthmon: New: %w", err)
		}
	}
	em, err := h.EventBus().Emitter(new(EvtHealthChanged), eventbus.Stateful)
	if err != nil {
		return nil, fmt.Errorf("healthmon: New: EvtHealthChanged emitter: %w", err)
	}
	m := &Monitor{
		h: h, rt: rt, cfg: cfg,
		damp:    damper{healthyFor: cfg.healthyFor, minDwell: cfg.minDwell},
		subs:    make(map[chan HealthReport]struct{}),
		kick:    make(chan struct{}, 1),
		emitCh:  make(chan EvtHealthChanged, 1),
		emitter: em,
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Start checks at once and then keeps checking and recovering until Close. It
// subscribes to the host's connection, local address and reachability events and,
// if enabled, watches kernel network changes. A second call does nothing; after
// Close it returns ErrClosed.
func (m *Monitor) Start() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.started {
		return nil
	}
	sub, err := m.h.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtLocalReachabilityChanged),
	}, eventbus.Name("resilience/healthmon"), eventbus.BufSize(256))
	if err != nil {
		return fmt.Errorf("healthmon: Start: subscribe to host events: %w", err)
	}
	var netCh <-chan netwatch.Change
	var watcher *netwatch.Watcher
	switch {
	case !m.cfg.netWatch:
	case m.cfg.netChanges != nil:
		netCh = m.cfg.netChanges
	default:
		watcher, err = netwatch.New(m.h.EventBus(), m.cfg.netWatchOpts...)
		if err != nil {
			log.Warnw("cannot watch network changes; running without", "err", err)
		} else {
			netCh = watcher.Changes()
		}
	}
	m.started = true
	m.wg.Add(2)
	go m.run(sub, netCh, watcher)
	go m.emitLoop()
	log.Infow("health monitor started", "min_peers", m.cfg.minPeers, "check_interval", m.cfg.checkInterval,
		"probe_interval", m.cfg.probeInterval, "recovery", m.cfg.recoverer != nil, "net_watch", netCh != nil)
	return nil
}

// Close stops the monitor: it cancels a probe or recovery in flight and waits for
// it and for every goroutine the monitor started, closes the kernel watcher, the
// event subscription and the emitter, and closes all subscriber channels. It is
// idempotent and safe to call concurrently (later calls wait for the first);
// it always returns nil.
//
// One of the goroutines Close waits for emits EvtHealthChanged on the host's
// event bus, and libp2p's Emit blocks while a bus subscriber's buffer is full; it
// cannot be interrupted (closing the emitter does not end a pending Emit). So a
// bus subscriber that neither reads nor closes its subscription holds Close up
// until it does one of them. Subscribe channels never do.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		m.lifeMu.Lock()
		m.closed = true
		m.lifeMu.Unlock()
		m.cancel()
		m.wg.Wait()
		if err := m.emitter.Close(); err != nil {
			log.Debugw("close emitter", "err", err)
		}
		m.closeSubscribers()
		log.Debugw("health monitor closed")
	})
	return nil
}

// CheckHealth checks now and returns the report; the check also counts for the
// hysteresis and, when the monitor runs, prompts recovery to act on it. A check
// only reads in-memory state (the routing table, the host's connections, the
// ConnectionManager's counts) and never blocks on the network, so ctx is not
// consulted. CheckHealth works before Start and after Close too. Checks run one
// at a time. CheckHealth reads the routing table, so it must not be called from a
// routing-table callback (kbucket holds its table lock there), nor from a
// MetricsTracer's CheckCompleted or StatusChanged.
func (m *Monitor) CheckHealth(ctx context.Context) HealthReport {
	_ = ctx
	rep, _ := m.check()
	select {
	case m.kick <- struct{}{}:
	default:
	}
	return rep
}

// IsHealthy reports whether the reported status of the latest check is Healthy;
// false before the first check.
func (m *Monitor) IsHealthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last.IsHealthy
}

// LastReport returns the report of the latest check (the zero report, with
// StatusUnknown, before the first check) without checking.
func (m *Monitor) LastReport() HealthReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// check runs one check. It returns the report and, when the hysteresis holds a
// change back, when to check again.
//
// It reads the table, the host and the manager without holding m.mu (the table
// may call a callback, under its own lock, that reads the monitor); checks are
// serialized by m.checkMu, so reports, publications and tracer calls keep the
// order of the checks.
func (m *Monitor) check() (HealthReport, time.Time) {
	m.checkMu.Lock()
	defer m.checkMu.Unlock()
	nw := m.h.Network()
	peers := m.rt.ListPeers()
	live := 0
	for _, p := range peers {
		if nw.Connectedness(p) == network.Connected {
			live++
		}
	}
	rep := HealthReport{
		Observed:            statusOf(live, m.cfg.minPeers),
		RoutingTableSize:    len(peers),
		TablePeersConnected: live,
		ConnectedPeers:      len(nw.Peers()),
		MinPeersThreshold:   m.cfg.minPeers,
	}
	if m.cfg.manager != nil {
		st := m.cfg.manager.Stats()
		rep.FailedConnections = st.Failed + st.Exhausted
		rep.RecoveringConnections = st.Retrying + st.Connecting
	}

	m.mu.Lock()
	rep.Timestamp = time.Now()
	from, to, recheckAt := m.damp.observe(rep.Timestamp, rep.Observed)
	rep.Status, rep.IsHealthy = to, to == Healthy
	m.last, m.hasLast = rep, true
	if from != to {
		m.publishLocked(from, rep)
	}
	m.mu.Unlock()

	if t := m.cfg.tracer; t != nil {
		t.CheckCompleted(rep.Observed, live)
		if from != to {
			t.StatusChanged(from, to)
		}
	}
	if from != to {
		log.Infow("health changed", "from", from, "to", to, "table_peers_connected", live,
			"routing_table", len(peers), "connected_peers", rep.ConnectedPeers, "min_peers", m.cfg.minPeers)
	} else if !recheckAt.IsZero() {
		log.Debugw("health change held back by hysteresis", "reported", to, "observed", rep.Observed, "until", recheckAt)
	}
	return rep, recheckAt
}

// run is the monitor's loop: periodic and event-driven checks, and recovery.
func (m *Monitor) run(sub event.Subscription, netCh <-chan netwatch.Change, watcher *netwatch.Watcher) {
	defer m.wg.Done()
	defer func() {
		if err := sub.Close(); err != nil {
			log.Debugw("close event subscription", "err", err)
		}
		if watcher != nil {
			_ = watcher.Close()
		}
	}()

	rec := newRecovery(m.cfg.probeInterval, m.cfg.maxProbeInterval, m.cfg.recoverBackoff, m.cfg.maxRecoverBackoff)
	results := make(chan opResult, 1) // one operation at a time: a send never blocks
	var opCancel context.CancelFunc
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	checkNow := true
	var nextCheck, recheckAt time.Time
	for {
		now := time.Now()
		if checkNow || !now.Before(nextCheck) || (!recheckAt.IsZero() && !now.Before(recheckAt)) {
			var rep HealthReport
			rep, recheckAt = m.check()
			now = rep.Timestamp
			rec.observe(now, rep.Observed)
			nextCheck = now.Add(m.cfg.checkInterval)
			checkNow = false
		}
		wake := nextCheck
		if !recheckAt.IsZero() && recheckAt.Before(wake) {
			wake = recheckAt
		}
		if m.cfg.recoverer != nil {
			a := rec.step(now)
			if a.cancel && opCancel != nil {
				opCancel()
			}
			switch a.start {
			case opProbe:
				opCancel = m.startOp(opProbe, m.cfg.probeTimeout, m.cfg.recoverer.Probe, results)
			case opRecover:
				log.Infow("recovering", "trigger", a.trigger)
				if t := m.cfg.tracer; t != nil {
					t.RecoveryStarted(a.trigger)
				}
				opCancel = m.startOp(opRecover, m.cfg.recoverTimeout, m.cfg.recoverer.Recover, results)
			}
			if !a.wakeAt.IsZero() && a.wakeAt.Before(wake) {
				wake = a.wakeAt
			}
		}
		timer.Reset(time.Until(wake))

		select {
		case <-m.ctx.Done():
			if opCancel != nil {
				opCancel() // the operation's goroutine is in m.wg
			}
			return
		case <-timer.C:
		case <-m.kick:
			checkNow = true
		case res := <-results:
			opCancel()
			opCancel = nil
			m.finished(rec, res)
			checkNow = true
		case e, ok := <-sub.Out():
			if !ok {
				return // cannot happen: only run closes sub
			}
			m.onBusEvent(rec, e)
			// Coalesce a burst (say, the connections a recovery opens) into one check.
		burst:
			for range 64 {
				select {
				case e, ok := <-sub.Out():
					if !ok {
						return
					}
					m.onBusEvent(rec, e)
				default:
					break burst
				}
			}
			checkNow = true
		case c, ok := <-netCh:
			if !ok {
				netCh = nil // the caller's channel (WithNetChanges) was closed
				continue
			}
			m.onNetChange(rec, c)
			checkNow = true
		}
	}
}

// startOp runs call in a goroutine owned by the monitor and delivers its result
// on results. It returns the cancel function of the call's context.
func (m *Monitor) startOp(kind opKind, timeout time.Duration, call func(context.Context) error, results chan<- opResult) context.CancelFunc {
	ctx, cancel := context.WithTimeout(m.ctx, timeout)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := call(ctx)
		results <- opResult{kind: kind, err: err}
	}()
	return cancel
}

func (m *Monitor) finished(rec *recovery, res opResult) {
	var connected []peer.ID
	if res.kind == opRecover {
		connected = m.h.Network().Peers()
	}
	rec.finished(time.Now(), res, connected)
	// Cancelled because the node is healthy (not because the monitor closed).
	healthyCancel := !rec.active && errors.Is(res.err, context.Canceled) && m.ctx.Err() == nil
	t := m.cfg.tracer
	switch res.kind {
	case opProbe:
		if res.err != nil {
			log.Debugw("probe failed", "err", res.err)
		} else {
			log.Debugw("probe succeeded")
		}
		if t != nil {
			t.ProbeCompleted(res.err == nil)
		}
	case opRecover:
		switch {
		case res.err == nil:
			log.Debugw("recovery finished")
		case healthyCancel:
			log.Debugw("recovery cancelled: healthy")
		default:
			log.Infow("recovery finished with error", "err", res.err)
		}
		if t != nil {
			t.RecoveryCompleted(res.err == nil || healthyCancel)
		}
	}
}

func (m *Monitor) onBusEvent(rec *recovery, e any) {
	switch e := e.(type) {
	case event.EvtPeerConnectednessChanged:
		if e.Connectedness == network.Connected {
			rec.connected(time.Now(), e.Peer)
		}
	case event.EvtLocalAddressesUpdated:
		// Only an address that appeared may mean the network is back: the
		// removal of addresses (observed ones expire when connections close)
		// is what an outage itself looks like.
		if addressAdded(e) {
			if rec.networkChanged(time.Now()) {
				log.Debugw("local address added: probing now")
			}
			m.networkBack()
		}
	case event.EvtLocalReachabilityChanged:
		if rec.networkChanged(time.Now()) {
			log.Debugw("reachability changed: probing now", "reachability", e.Reachability)
		}
	}
}

func (m *Monitor) onNetChange(rec *recovery, c netwatch.Change) {
	switch {
	case c.Kind.Gained():
		if rec.networkChanged(time.Now()) {
			log.Infow("network came back: probing now", "change", c.String())
		}
		m.networkBack()
	case c.Kind.Lost():
		m.checkConns(c)
	}
}

// pingTimeout bounds the ping of each routing-table peer after a link went
// down: a live connection on loopback or a LAN answers within milliseconds.
const pingTimeout = time.Second

// networkBack acts on a sign that the network is back (or the machine woke):
// the swarm's dial backoff of routing-table peers, set while nothing could be
// reached, is cleared, and rounds of the dialer waiting out their backoff dial
// at once.
func (m *Monitor) networkBack() {
	if b, ok := m.h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		for _, p := range m.rt.ListPeers() {
			b.Backoff().Clear(p)
		}
	}
	if w, ok := m.h.(interface{ WakeRounds() int }); ok {
		w.WakeRounds()
	}
}

// checkConns acts on a sign that the network went away, at once, instead of
// waiting ~30 s for the muxers' keep-alive: connections on a removed address are
// closed; after a link went down or the default route went away, every
// routing-table peer is pinged with a short timeout (pingTimeout) and the
// connections of those that do not answer are closed. Closing them makes the
// next check see the outage. One check runs at a time, in a goroutine the
// monitor owns.
func (m *Monitor) checkConns(c netwatch.Change) {
	if !m.checking.CompareAndSwap(false, true) {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.checking.Store(false)
		nw := m.h.Network()
		closed := 0
		for _, conn := range netwatch.ConnsOn(nw, c) {
			if err := conn.Close(); err == nil {
				closed++
			}
		}
		if c.Kind == netwatch.AddrRemoved {
			log.Infow("network change: closed the connections on the removed address", "change", c.String(), "closed", closed)
			m.CheckHealth(m.ctx)
			return
		}
		ctx, cancel := context.WithTimeout(m.ctx, pingTimeout)
		defer cancel()
		var wg sync.WaitGroup
		var dead atomic.Int32
		for _, p := range m.rt.ListPeers() {
			if nw.Connectedness(p) != network.Connected {
				continue
			}
			wg.Go(func() {
				// ping.Ping closes its channel without a result when ctx ends
				// first: that is no answer in time. A peer that speaks no ping
				// fails at once and is left alone.
				res, answered := <-ping.Ping(ctx, m.h, p)
				if !answered || (res.Error != nil && ctx.Err() != nil) {
					dead.Add(1)
					_ = nw.ClosePeer(p)
				}
			})
		}
		wg.Wait()
		log.Infow("network change: checked the routing-table peers", "change", c.String(),
			"closed_on_address", closed, "unanswered", dead.Load())
		m.CheckHealth(m.ctx)
	}()
}

// addressAdded reports whether e holds an address that was added.
func addressAdded(e event.EvtLocalAddressesUpdated) bool {
	for _, a := range e.Current {
		if a.Action == event.Added {
			return true
		}
	}
	return false
}

// emitLoop emits EvtHealthChanged on the bus off the monitor's loop.
func (m *Monitor) emitLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case ev := <-m.emitCh:
			if err := m.emitter.Emit(ev); err != nil {
				log.Debugw("emit EvtHealthChanged", "err", err)
			}
		}
	}
}

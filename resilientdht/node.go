package resilientdht

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	logging "github.com/ipfs/go-log/v2"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

var log = logging.Logger("resilience/resilientdht")

var (
	// ErrClosed is returned by WaitHealthy after Close.
	ErrClosed = errors.New("resilientdht: node closed")
	// ErrBootstrapRunning is returned by BootstrapResult while the startup
	// bootstrap runs.
	ErrBootstrapRunning = errors.New("resilientdht: startup bootstrap still running")
)

// Node is a host made resilient: the host wrapped by the retrying dialer, a
// Kademlia DHT, the Bootstrapper that joins it and the health monitor that
// rejoins after outages. New builds and starts it; Close stops it. A Node
// is safe for concurrent use.
type Node struct {
	host     *dialer.Host
	routing  routing.Routing         // *dual.DHT or *dht.IpfsDHT
	tables   map[string]*dht.IpfsDHT // "wan", "lan" or "dht"
	closeDHT func() error
	boot     *bootstrap.Bootstrapper
	mon      *healthmon.Monitor
	kind     Kind // "" for a caller's DHT
	loopback bool

	kadAsked atomic.Int64 // calls of kad-dht's BootstrapPeersFunc
	warned   emptyWarner

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	bootDone chan struct{}
	bootRes  bootstrap.Result // written before bootDone is closed
	bootErr  error

	closeOnce sync.Once
	closeErr  error
}

// New makes h resilient and starts it:
//
//	h ──► dialer.Wrap ──► DHT (on h) ──► bootstrap.New ──► healthmon.New ──► Start ──► startup Bootstrap
//
// The host is wrapped by the dialer (retry profiles per peer, the retry
// guards, metrics); the DHT is built on h itself, so that kad-dht's own
// dials fail fast, and given a BootstrapPeersFunc that returns no peers, so
// that the Bootstrapper alone dials bootstrap peers; the health monitor
// starts, with the Bootstrapper as its recovery; and the startup bootstrap
// runs in the background (Bootstrapped tells when it ended).
//
// Options are checked first and an option error leaves h as it is. From
// then on the Node owns h (and a DHT given with WithIpfsDHT or
// WithDualDHT): a later error closes them, and so does Close.
func New(h host.Host, opts ...Option) (*Node, error) {
	if h == nil {
		return nil, errors.New("resilientdht: New: h must not be nil")
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("resilientdht: New: opts[%d] is nil", i)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	n := &Node{tables: map[string]*dht.IpfsDHT{}, kind: cfg.kind, bootDone: make(chan struct{})}
	built := false
	defer func() {
		if !built {
			n.closeParts(h, cfg)
		}
	}()

	dopts, err := dialerOptions(cfg)
	if err != nil {
		return nil, err
	}
	if n.host, err = dialer.Wrap(h, dopts...); err != nil {
		return nil, fmt.Errorf("resilientdht: New: %w", err)
	}
	n.loopback = loopbackOnLan(cfg, h)
	rt, err := n.buildDHT(h, cfg)
	if err != nil {
		return nil, err
	}

	bopts := []bootstrap.Option{bootstrap.WithMinPeers(cfg.minPeers), bootstrap.WithRetryConfig(cfg.bootstrapCfg)}
	if cfg.backupFile != "" {
		bopts = append(bopts, bootstrap.WithBackupFile(cfg.backupFile))
	}
	if n.boot, err = bootstrap.New(n.host, rt, cfg.bootstrapPeers, bopts...); err != nil {
		return nil, fmt.Errorf("resilientdht: New: %w", err)
	}

	hopts := []healthmon.Option{
		healthmon.WithMinPeers(cfg.minPeers),
		healthmon.WithRecoverer(recoverer{n}),
		healthmon.WithManager(n.host.Manager()),
	}
	if cfg.registerer != nil {
		t, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(cfg.registerer))
		if err != nil {
			return nil, fmt.Errorf("resilientdht: WithRegisterer: %w", err)
		}
		hopts = append(hopts, healthmon.WithMetricsTracer(t))
	}
	hopts = append(hopts, cfg.healthOptions...)
	if n.mon, err = healthmon.New(n.host, rt, hopts...); err != nil {
		return nil, fmt.Errorf("resilientdht: New: %w", err)
	}
	if err := n.mon.Start(); err != nil {
		return nil, fmt.Errorf("resilientdht: New: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() { n.startupBootstrap(ctx) })
	built = true
	log.Debugw("node started", "peer", h.ID(), "dht", n.kind, "loopback_on_lan_dht", n.loopback,
		"bootstrap_peers", len(cfg.bootstrapPeers), "min_peers", cfg.minPeers)
	return n, nil
}

// dialerOptions returns dialer.Wrap's options: profiles, guards, metrics,
// then the caller's.
func dialerOptions(cfg config) ([]dialer.Option, error) {
	dopts := []dialer.Option{
		dialer.WithDefaultConfig(cfg.peerCfg),
		dialer.WithBootstrapConfig(cfg.bootstrapCfg),
	}
	if cfg.guards {
		g, err := newRetryGuards()
		if err != nil {
			return nil, err
		}
		dopts = append(dopts, dialer.WithRetryOptions(g.options))
	}
	if cfg.registerer != nil {
		dt, err := dialer.NewMetricsTracer(dialer.WithRegisterer(cfg.registerer))
		if err != nil {
			return nil, fmt.Errorf("resilientdht: WithRegisterer: %w", err)
		}
		rt, err := resilience.NewMetricsTracer(resilience.WithRegisterer(cfg.registerer))
		if err != nil {
			return nil, fmt.Errorf("resilientdht: WithRegisterer: %w", err)
		}
		mgr, err := resilience.NewConnectionManager(resilience.WithDefaultConfig(cfg.peerCfg), resilience.WithManagerMetrics(rt))
		if err != nil {
			return nil, fmt.Errorf("resilientdht: New: %w", err)
		}
		dopts = append(dopts, dialer.WithMetricsTracer(dt), dialer.WithRetryMetrics(rt), dialer.WithManager(mgr))
	}
	return append(dopts, cfg.dialerOptions...), nil
}

// closeParts undoes a failed New: what was built, then h and a caller's DHT.
func (n *Node) closeParts(h host.Host, cfg config) {
	if n.mon != nil {
		n.mon.Close()
	}
	if n.boot != nil {
		n.boot.Close()
	}
	switch {
	case n.closeDHT != nil:
		n.closeDHT()
	case cfg.ipfsDHT != nil:
		cfg.ipfsDHT.Close()
	case cfg.dualDHT != nil:
		cfg.dualDHT.Close()
	}
	if n.host != nil {
		n.host.Close() // closes h
	} else {
		h.Close()
	}
}

// startupBootstrap runs the first Bootstrap and says loudly when it did not
// get the node into a table.
func (n *Node) startupBootstrap(ctx context.Context) {
	defer close(n.bootDone)
	res, err := n.boot.Bootstrap(ctx)
	n.bootRes, n.bootErr = res, err
	switch {
	case ctx.Err() != nil:
		return // closing
	case err != nil:
		log.Warnw("startup bootstrap reached no peer; the health monitor keeps trying", "err", textutil.ErrLine(err))
	case res.TableSize == 0 && len(res.Connected) > 0:
		ids := make([]peer.ID, len(res.Connected))
		for i, c := range res.Connected {
			ids[i] = c.ID
		}
		n.warnEmptyTable("startup bootstrap", ids)
	}
}

// Bootstrapped returns a channel that is closed when the startup bootstrap
// has ended (or was cut short by Close).
func (n *Node) Bootstrapped() <-chan struct{} { return n.bootDone }

// BootstrapResult returns the startup bootstrap's result and error (see
// bootstrap.Bootstrapper.Bootstrap) once Bootstrapped is closed, and
// ErrBootstrapRunning before.
func (n *Node) BootstrapResult() (bootstrap.Result, error) {
	select {
	case <-n.bootDone:
		return n.bootRes, n.bootErr
	default:
		return bootstrap.Result{}, ErrBootstrapRunning
	}
}

// WaitHealthy blocks until the health monitor reports the node healthy, ctx
// ends (its cause is returned) or the node is closed (ErrClosed).
func (n *Node) WaitHealthy(ctx context.Context) error {
	ch := n.mon.Subscribe()
	defer n.mon.Unsubscribe(ch)
	for {
		if n.mon.IsHealthy() {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case _, ok := <-ch:
			if !ok {
				return ErrClosed
			}
		}
	}
}

// Host returns the wrapped host: its Connect retries with the peer's
// profile. Close the Node, not the host.
func (n *Node) Host() *dialer.Host { return n.host }

// Routing returns the DHT: a *dual.DHT for Dual, a *dht.IpfsDHT otherwise.
func (n *Node) Routing() routing.Routing { return n.routing }

// Bootstrapper returns the Bootstrapper (for SaveBackup, BackupPeers, ...).
func (n *Node) Bootstrapper() *bootstrap.Bootstrapper { return n.boot }

// Monitor returns the health monitor (IsHealthy, LastReport, Subscribe).
func (n *Node) Monitor() *healthmon.Monitor { return n.mon }

// IsHealthy reports the health monitor's latest verdict.
func (n *Node) IsHealthy() bool { return n.mon.IsHealthy() }

// LoopbackOnLanDHT reports whether the LAN DHT keeps loopback addresses
// (WithLoopbackAddressesOnLanDHT, or its automatic choice).
func (n *Node) LoopbackOnLanDHT() bool { return n.loopback }

// TableSizes returns the size of each routing table by name: "wan" and
// "lan" for Dual (and a caller's dual DHT), "wan", "lan" or "dht" (Plain
// and a caller's DHT) otherwise.
func (n *Node) TableSizes() map[string]int {
	out := make(map[string]int, len(n.tables))
	for name, d := range n.tables {
		out[name] = d.RoutingTable().Size()
	}
	return out
}

// Connect connects to pi through the dialer (its retry round; a peer whose
// only usable addresses are /webrtc-direct gets the WebRTC profile there).
func (n *Node) Connect(ctx context.Context, pi peer.AddrInfo) error {
	return n.host.Connect(ctx, pi)
}

// Close stops everything in reverse order of starting: the startup
// bootstrap, the monitor, the Bootstrapper (which saves the backup peers),
// the DHT and the host. It is idempotent and safe to call concurrently;
// every call returns the first call's error.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		n.closeErr = errors.Join(n.mon.Close(), n.boot.Close(), n.closeDHT(), n.host.Close())
	})
	return n.closeErr
}

// kindName is the DHT kind for logs.
func (n *Node) kindName() string {
	if n.kind == "" {
		return "caller's"
	}
	return string(n.kind)
}

// kadBootstrapPeers is kad-dht's BootstrapPeersFunc: no peers, ever. kad-dht
// asks when its table is empty (at start, every 2 minutes and when a peer
// leaves it); the Bootstrapper, driven by the health monitor, owns these
// dials, and two owners would race (the second finds the swarm's dial
// backoff set by the first).
func (n *Node) kadBootstrapPeers() []peer.AddrInfo {
	n.kadAsked.Add(1)
	log.Debugw("kad-dht asked for bootstrap peers; the Bootstrapper dials them")
	return nil
}

// dhtProtocols are the DHT protocols a built kind serves.
func dhtProtocols(k Kind) []protocol.ID {
	lan := protocol.ID("/ipfs" + string(dual.LanExtension) + "/kad/1.0.0")
	switch k {
	case Dual:
		return []protocol.ID{dht.ProtocolDHT, lan}
	case LAN:
		return []protocol.ID{lan}
	case WAN, Plain:
		return []protocol.ID{dht.ProtocolDHT}
	}
	return nil
}

func allLoopback(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !isLoopback(a) {
			return false
		}
	}
	return len(addrs) > 0
}

package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// nodeConfig is everything needed to build a node; `run` fills it from flags,
// `demo` for each in-process node.
type nodeConfig struct {
	key            crypto.PrivKey
	listen         []ma.Multiaddr
	bootstrapPeers []peer.AddrInfo
	mode           dht.ModeOpt
	dhtKind        string // "dual", "wan", "lan", or "plain" (demo: one DHT, loopback allowed)
	minPeers       int
	bootstrapCfg   resilience.RetryConfig
	peerCfg        resilience.RetryConfig
	backupFile     string // "" = no backup peers
	registry       *prometheus.Registry
	tolerateListen bool // skip listen addresses the machine cannot use (IPv6 missing)
	hostOptions    []libp2p.Option
	healthOptions  []healthmon.Option
}

// node is a running DHT node: a libp2p host wrapped by the retrying dialer, the
// DHT, the bootstrapper and the health monitor.
type node struct {
	host     *dialer.Host
	tables   map[string]*dht.IpfsDHT // by name: "wan", "lan" or "dht"
	closeDHT func() error
	boot     *bootstrap.Bootstrapper
	mon      *healthmon.Monitor
}

func parseMode(s string) dht.ModeOpt {
	switch s {
	case "server":
		return dht.ModeServer
	case "client":
		return dht.ModeClient
	default:
		return dht.ModeAuto
	}
}

// newNode builds and starts a node. The caller runs Bootstrap and must Close it.
func newNode(c nodeConfig) (_ *node, err error) {
	n := &node{tables: map[string]*dht.IpfsDHT{}}
	defer func() {
		if err != nil {
			n.Close() // what was built so far
		}
	}()

	cm, err := connmgr.NewConnManager(100, 400)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(c.key),
		libp2p.NoListenAddrs,         // listenAll reports each address that fails
		libp2p.ConnectionManager(cm), // resource manager: go-libp2p's default, on
	}
	if c.registry != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(c.registry))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	opts = append(opts, c.hostOptions...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, err
	}
	if err := listenAll(h.Network(), c.listen, c.tolerateListen); err != nil {
		h.Close()
		return nil, err
	}

	var ids []peer.ID
	for _, pi := range c.bootstrapPeers {
		ids = append(ids, pi.ID)
	}
	guards, err := newRetryGuards()
	if err != nil {
		h.Close()
		return nil, err
	}
	dopts := []dialer.Option{
		dialer.WithDefaultConfig(c.peerCfg),
		dialer.WithBootstrapConfig(c.bootstrapCfg),
		dialer.WithBootstrapPeers(ids...),
		dialer.WithRetryOptions(guards.options),
	}
	var rtracer resilience.MetricsTracer
	if c.registry != nil {
		dt, err := dialer.NewMetricsTracer(dialer.WithRegisterer(c.registry))
		if err != nil {
			h.Close()
			return nil, err
		}
		rtracer, err = resilience.NewMetricsTracer(resilience.WithRegisterer(c.registry))
		if err != nil {
			h.Close()
			return nil, err
		}
		mgr, err := resilience.NewConnectionManager(resilience.WithDefaultConfig(c.peerCfg), resilience.WithManagerMetrics(rtracer))
		if err != nil {
			h.Close()
			return nil, err
		}
		dopts = append(dopts, dialer.WithMetricsTracer(dt), dialer.WithRetryMetrics(rtracer), dialer.WithManager(mgr))
	}
	dh, err := dialer.Wrap(h, dopts...)
	if err != nil {
		h.Close()
		return nil, err
	}
	n.host = dh

	// kad-dht gets the plain host: its own dials must fail fast (the dialer's
	// retry rounds are for the peers this node cares about).
	common := []dht.Option{dht.Mode(c.mode), dht.BootstrapPeers(c.bootstrapPeers...)}
	var rt bootstrap.RoutingTable
	var ht healthmon.RoutingTable
	switch c.dhtKind {
	case "dual":
		d, err := dual.New(h, dual.DHTOption(common...))
		if err != nil {
			return nil, err
		}
		n.tables["wan"], n.tables["lan"], n.closeDHT = d.WAN, d.LAN, d.Close
		rt, ht = dualTable{d}, largerTable{d.WAN, d.LAN}
	case "wan", "lan", "plain":
		o := common
		switch c.dhtKind {
		case "wan":
			o = append(o, dht.QueryFilter(dht.PublicQueryFilter), dht.RoutingTableFilter(dht.PublicRoutingTableFilter))
		case "lan":
			o = append(o, dht.ProtocolExtension(dual.LanExtension), dht.QueryFilter(dht.PrivateQueryFilter), dht.RoutingTableFilter(dht.PrivateRoutingTableFilter))
		}
		d, err := dht.New(h, o...)
		if err != nil {
			return nil, err
		}
		name := c.dhtKind
		if name == "plain" {
			name = "dht"
		}
		n.tables[name], n.closeDHT = d, d.Close
		rt, ht = bootstrap.DHT(d), healthmon.DHTTable(d)
	default:
		return nil, fmt.Errorf("unknown DHT kind %q", c.dhtKind)
	}

	bopts := []bootstrap.Option{bootstrap.WithMinPeers(c.minPeers), bootstrap.WithRetryConfig(c.bootstrapCfg)}
	if c.backupFile != "" {
		bopts = append(bopts, bootstrap.WithBackupFile(c.backupFile))
	}
	if n.boot, err = bootstrap.New(dh, rt, c.bootstrapPeers, bopts...); err != nil {
		return nil, err
	}

	hopts := []healthmon.Option{
		healthmon.WithMinPeers(c.minPeers),
		healthmon.WithRecoverer(n.boot),
		healthmon.WithManager(dh.Manager()),
	}
	if c.registry != nil {
		ht, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(c.registry))
		if err != nil {
			return nil, err
		}
		hopts = append(hopts, healthmon.WithMetricsTracer(ht))
	}
	hopts = append(hopts, c.healthOptions...)
	if n.mon, err = healthmon.New(dh, ht, hopts...); err != nil {
		return nil, err
	}
	if err := n.mon.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// retryGuards protect the network from this node's retries when many peers fail
// at once: a retry budget shared by all peers (retries fail fast once it is
// spent), a per-peer attempt rate limit, and adaptive backoff (delays stretch
// while nearly every attempt fails; waiting retries wake when the network is back).
type retryGuards struct {
	budget   *resilience.RetryBudget
	limit    *resilience.PeerRateLimiter
	adaptive *resilience.AdaptiveBackoff
}

func newRetryGuards() (*retryGuards, error) {
	budget, err := resilience.NewRetryBudget(resilience.BudgetConfig{}) // 100 tokens, 0.2 per success, 1/s
	if err != nil {
		return nil, err
	}
	limit, err := resilience.NewPeerRateLimiter(1, 3, 0) // 1 attempt/s per peer, bursts of 3
	if err != nil {
		return nil, err
	}
	adaptive, err := resilience.NewAdaptiveBackoff(resilience.AdaptiveConfig{})
	if err != nil {
		return nil, err
	}
	return &retryGuards{budget, limit, adaptive}, nil
}

func (g *retryGuards) options(id peer.ID) []resilience.RetryOption {
	return []resilience.RetryOption{
		resilience.WithGuards(g.budget, g.limit.Guard(id.String())),
		resilience.WithAdaptive(g.adaptive),
	}
}

// listenAll listens on every address; one that fails is bad input naming it
// (a port in use, an address not on this machine). With tolerate (the default
// list), addresses of a family the machine lacks are skipped, as long as one
// address works.
func listenAll(n network.Network, addrs []ma.Multiaddr, tolerate bool) error {
	ok := 0
	for _, a := range addrs {
		if err := n.Listen(a); err != nil {
			if tolerate && (errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL)) {
				log.Infow("skipping listen address the machine cannot use", "addr", a, "err", err)
				continue
			}
			return badInput("--listen %s: %v", a, unwrapSyscall(err))
		}
		ok++
	}
	if ok == 0 {
		return badInput("--listen: none of %v could be used", addrs)
	}
	return nil
}

// unwrapSyscall shortens "listen tcp4 1.2.3.4:5: bind: address already in use"
// style errors to their cause when there is one.
func unwrapSyscall(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Tables returns the size of each routing table by name.
func (n *node) Tables() map[string]int {
	out := make(map[string]int, len(n.tables))
	for name, d := range n.tables {
		out[name] = d.RoutingTable().Size()
	}
	return out
}

// Close stops everything in reverse order of creation; it saves backup peers.
func (n *node) Close() error {
	var errs []error
	if n.mon != nil {
		errs = append(errs, n.mon.Close())
	}
	if n.boot != nil {
		errs = append(errs, n.boot.Close())
	}
	if n.closeDHT != nil {
		errs = append(errs, n.closeDHT())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	return errors.Join(errs...)
}

// dualTable is the Bootstrapper's view of a dual DHT: both tables refreshed, the
// larger one counted.
type dualTable struct{ d *dual.DHT }

func (t dualTable) RefreshRoutingTable() <-chan error {
	out := make(chan error, 1)
	wan, lan := t.d.WAN.RefreshRoutingTable(), t.d.LAN.RefreshRoutingTable()
	go func() { // ends when both refreshes do (kad-dht always answers)
		out <- errors.Join(<-wan, <-lan)
	}()
	return out
}

func (t dualTable) RoutingTableSize() int {
	return max(t.d.WAN.RoutingTable().Size(), t.d.LAN.RoutingTable().Size())
}

func (t dualTable) RoutingTablePeers() []peer.ID { return largerTable{t.d.WAN, t.d.LAN}.ListPeers() }

// largerTable is the health monitor's view of a dual DHT: the peers of the larger
// table. A node on a private network or loopback only has LAN peers; a public
// node mostly WAN peers.
type largerTable struct{ wan, lan *dht.IpfsDHT }

func (t largerTable) ListPeers() []peer.ID {
	w, l := t.wan.RoutingTable().ListPeers(), t.lan.RoutingTable().ListPeers()
	if len(l) > len(w) {
		return l
	}
	return w
}

func backupPath(dataDir string) string { return filepath.Join(dataDir, "backup-peers.json") }

package simnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	sim "github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
	"golang.org/x/time/rate"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// Config describes a simulated network. Zero values take the defaults named.
type Config struct {
	Nodes     int    // all nodes, bootstrap nodes included
	BootNodes int    // the first BootNodes nodes are every node's bootstrap peers (default 3)
	Seed      uint64 // keys and Rand
	MinPeers  int    // connected table peers for health (default resilientdht.DefaultMinPeers)
	// Latency is the one-way latency of every packet (default 10 ms).
	Latency time.Duration
	// Bandwidth is each node's up- and downlink in bits/s (default 20 Mbit/s).
	Bandwidth int
	// KadOnly builds kad-dht alone (server mode, the bootstrap peers dialled
	// once at start, as a user of kad-dht does) instead of resilientdht.New.
	KadOnly bool
	// BootstrapRetry replaces resilientdht's default bootstrap profile
	// (resilientdht.DefaultBootstrapRetry).
	BootstrapRetry *resilience.RetryConfig
	// BootAcceptRate > 0 makes each bootstrap node accept at most this many
	// new inbound connections per second (bursts of one second's worth).
	// The excess is refused before the QUIC handshake, as go-libp2p's
	// resource manager refuses a connection (its ConnContext hook on the
	// QUIC listener): the dialer gets CONNECTION_REFUSED at once.
	BootAcceptRate float64
	// JoinOver > 0 starts the bootstrap nodes at once and the others one by
	// one, evenly spread over JoinOver (a fleet rolling out), in the
	// background: New returns at once, Joined tells when all have started.
	// 0 starts every node before New returns, all at the same instant.
	JoinOver time.Duration
}

// Network is a running simulated network. Its methods are safe for concurrent
// use; it must be built, used and closed inside one synctest bubble.
type Network struct {
	Nodes []*Node
	Rand  *rand.Rand // seeded from Config.Seed, for the scenario's choices; not safe for concurrent use

	cfg   Config
	sim   *sim.Simnet
	start time.Time

	mu  sync.RWMutex
	cut map[string]bool // IPs whose packets are lost

	joined   chan struct{} // closed when every node has started (or one failed)
	joinErr  error         // set before joined closes
	stopJoin chan struct{} // closed by Close
}

// Node is one simulated node.
type Node struct {
	Index int
	ID    peer.ID
	Boot  bool

	net   *Network
	ip    net.IP
	key   crypto.PrivKey
	addr  ma.Multiaddr
	host  host.Host
	rd    *resilientdht.Node // nil with KadOnly
	kad   *dht.IpfsDHT       // the table health counts
	gater *countingGater

	started time.Time   // written before up is set
	up      atomic.Bool // the fields above are set and safe to read
}

// cutLatency is the latency of a lost packet: longer than any scenario, so
// the packet never arrives while it matters (QUIC sees a silent network:
// handshakes and idle connections time out, as on a real outage).
const cutLatency = 24 * time.Hour

// New builds and starts cfg.Nodes nodes and the network between them. Call it
// inside synctest.Test; Close before the bubble ends.
func New(cfg Config) (*Network, error) {
	if cfg.BootNodes == 0 {
		cfg.BootNodes = 3
	}
	if cfg.MinPeers == 0 {
		cfg.MinPeers = resilientdht.DefaultMinPeers
	}
	if cfg.Latency == 0 {
		cfg.Latency = 10 * time.Millisecond
	}
	if cfg.Bandwidth == 0 {
		cfg.Bandwidth = 20 * simlibp2p.OneMbps
	}
	if cfg.Nodes <= cfg.BootNodes {
		return nil, fmt.Errorf("simnet: Nodes %d: want more than BootNodes (%d)", cfg.Nodes, cfg.BootNodes)
	}
	n := &Network{
		cfg:   cfg,
		Rand:  rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		cut:   map[string]bool{},
		start: time.Now(),
	}
	n.sim = &sim.Simnet{LatencyFunc: n.latency}
	keys := rand.NewChaCha8(seedBytes(cfg.Seed))
	for i := range cfg.Nodes {
		priv, _, err := crypto.GenerateEd25519Key(keys)
		if err != nil {
			return nil, err
		}
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		ip := sim.IntToPublicIPv4(i)
		n.Nodes = append(n.Nodes, &Node{
			Index: i, ID: id, Boot: i < cfg.BootNodes, net: n, ip: ip, key: priv,
			gater: &countingGater{start: n.start},
			addr:  ma.StringCast(fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", ip)),
		})
	}
	n.sim.Start()
	n.joined, n.stopJoin = make(chan struct{}), make(chan struct{})
	first := len(n.Nodes)
	if cfg.JoinOver > 0 {
		first = cfg.BootNodes
	}
	for _, nd := range n.Nodes[:first] {
		if err := nd.start(); err != nil {
			close(n.joined)
			n.Close()
			return nil, fmt.Errorf("simnet: node %d: %w", nd.Index, err)
		}
	}
	if first == len(n.Nodes) {
		close(n.joined)
		return n, nil
	}
	go n.join(n.Nodes[first:], max(cfg.JoinOver/time.Duration(len(n.Nodes)-first), time.Nanosecond))
	return n, nil
}

// join starts the nodes one every gap; Close stops it.
func (n *Network) join(nodes []*Node, gap time.Duration) {
	defer close(n.joined)
	t := time.NewTicker(gap)
	defer t.Stop()
	for _, nd := range nodes {
		select {
		case <-n.stopJoin:
			return
		case <-t.C:
		}
		if err := nd.start(); err != nil {
			n.joinErr = fmt.Errorf("simnet: node %d: %w", nd.Index, err)
			return
		}
	}
}

// Joined waits until every node has started (at once without
// Config.JoinOver) and returns the error of a node that failed to.
func (n *Network) Joined() error {
	<-n.joined
	return n.joinErr
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return b
}

// latency is the simulated network's per-packet latency: cut nodes lose
// every packet they send or should receive.
func (n *Network) latency(p *sim.Packet) time.Duration {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if len(n.cut) > 0 && (n.cut[ipOf(p.From)] || n.cut[ipOf(p.To)]) {
		return cutLatency
	}
	return n.cfg.Latency
}

func ipOf(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.IP.String()
	}
	return a.String()
}

// BootPeers are the bootstrap nodes' addresses.
func (n *Network) BootPeers() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, nd := range n.Nodes[:n.cfg.BootNodes] {
		out = append(out, peer.AddrInfo{ID: nd.ID, Addrs: []ma.Multiaddr{nd.addr}})
	}
	return out
}

// start builds and starts the node's host and DHT stack; on success the
// node is Up.
func (nd *Node) start() error {
	if err := nd.build(); err != nil {
		return err
	}
	nd.up.Store(true)
	return nil
}

func (nd *Node) build() error {
	n := nd.net
	nd.started = time.Now()
	cm, err := resilientdht.NewConnManager(resilientdht.DefaultConnsLow, resilientdht.DefaultConnsHigh) // resilient-dht's
	if err != nil {
		return err
	}
	if nd.Boot && n.cfg.BootAcceptRate > 0 {
		nd.gater.limit = rate.NewLimiter(rate.Limit(n.cfg.BootAcceptRate), max(1, int(n.cfg.BootAcceptRate)))
	}
	link := sim.NodeBiDiLinkSettings{
		Downlink: sim.LinkSettings{BitsPerSecond: n.cfg.Bandwidth},
		Uplink:   sim.LinkSettings{BitsPerSecond: n.cfg.Bandwidth},
	}
	h, err := libp2p.New(
		libp2p.Identity(nd.key),
		libp2p.ListenAddrs(nd.addr),
		simlibp2p.QUICSimnet(n.sim, link, quicreuse.ConnContext(nd.gater.admit)),
		// simlibp2p: identify's address discovery stalls synctest.
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(nd.gater),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return err
	}
	nd.host = h
	boot := without(n.BootPeers(), nd.ID)
	if n.cfg.KadOnly {
		d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.BootstrapPeers(boot...))
		if err != nil {
			h.Close()
			return err
		}
		nd.kad = d
		for _, pi := range boot { // as kad-dht's users do at start; failures are kad-dht's to mend
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				h.Connect(ctx, pi) //nolint:errcheck // see above
			}()
		}
		return nil
	}
	opts := []resilientdht.Option{
		resilientdht.WithDHT(resilientdht.Plain),
		resilientdht.WithMode(dht.ModeServer),
		resilientdht.WithBootstrapPeers(boot...),
		resilientdht.WithMinPeers(n.cfg.MinPeers),
		// A goroutine blocked in a netlink read never lets virtual time pass.
		resilientdht.WithHealthOptions(healthmon.WithNetWatch(false)),
	}
	if n.cfg.BootstrapRetry != nil {
		opts = append(opts, resilientdht.WithBootstrapRetry(*n.cfg.BootstrapRetry))
	}
	rd, err := resilientdht.New(h, opts...)
	if err != nil {
		return err // New closed h
	}
	nd.rd = rd
	d, ok := rd.Routing().(*dht.IpfsDHT)
	if !ok {
		rd.Close()
		return errors.New("resilientdht.Plain did not build an *dht.IpfsDHT")
	}
	nd.kad = d
	return nil
}

func without(peers []peer.AddrInfo, id peer.ID) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, p := range peers {
		if p.ID != id {
			out = append(out, p)
		}
	}
	return out
}

// Healthy reports the node's health: its monitor's verdict, or with KadOnly
// the monitor's measure taken directly (TableHealthy).
func (nd *Node) Healthy() bool {
	if !nd.Up() {
		return false
	}
	if nd.rd != nil {
		return nd.rd.IsHealthy()
	}
	return nd.TableHealthy()
}

// TableHealthy reports whether the node is connected to at least MinPeers
// of its routing-table peers: the health monitor's measure, taken directly
// (no dwell, no check cadence), the same for both stacks.
func (nd *Node) TableHealthy() bool {
	return nd.Up() && nd.TablePeersConnected() >= nd.net.cfg.MinPeers
}

// TablePeersConnected counts routing-table peers the node is connected to.
func (nd *Node) TablePeersConnected() int {
	if !nd.Up() {
		return 0
	}
	c := 0
	for _, p := range nd.kad.RoutingTable().ListPeers() {
		if nd.host.Network().Connectedness(p) == network.Connected {
			c++
		}
	}
	return c
}

// Conns is the number of connections the node has open.
func (nd *Node) Conns() int {
	if !nd.Up() {
		return 0
	}
	return len(nd.host.Network().Conns())
}

// Up reports whether the node has started (see Config.JoinOver).
func (nd *Node) Up() bool { return nd.up.Load() }

// Started is when the node started; zero until it is Up.
func (nd *Node) Started() time.Time {
	if !nd.Up() {
		return time.Time{}
	}
	return nd.started
}

// Dials is the number of outbound dials the node's swarm started.
func (nd *Node) Dials() int64 { return nd.gater.dials.Load() }

// Refused is the number of inbound connections the node refused (BootAcceptRate).
func (nd *Node) Refused() int64 { return nd.gater.refused.Load() }

// PeakInboundPerSecond is the most new inbound connections the node
// accepted in one second of virtual time.
func (nd *Node) PeakInboundPerSecond() int { return nd.gater.peak(&nd.gater.inbound) }

// PeakAttemptsPerSecond is the most inbound connection attempts (QUIC
// handshakes begun, accepted or refused) the node saw in one second of
// virtual time: the inbound dial rate.
func (nd *Node) PeakAttemptsPerSecond() int { return nd.gater.peak(&nd.gater.attempts) }

// Cut makes the node lose every packet it sends or should receive, as if its
// network went away; Restore brings the network back. Its connections die
// by QUIC's idle timeout, as on a real outage.
func (n *Network) Cut(nodes ...*Node) { n.setCut(true, nodes) }

// Restore ends a Cut.
func (n *Network) Restore(nodes ...*Node) { n.setCut(false, nodes) }

func (n *Network) setCut(on bool, nodes []*Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nd := range nodes {
		if on {
			n.cut[nd.ip.String()] = true
		} else {
			delete(n.cut, nd.ip.String())
		}
	}
}

// Close stops every node and the network.
func (n *Network) Close() {
	close(n.stopJoin)
	<-n.joined
	var wg sync.WaitGroup
	for _, nd := range n.Nodes {
		if !nd.Up() {
			continue
		}
		wg.Go(func() {
			switch {
			case nd.rd != nil:
				nd.rd.Close()
			case nd.kad != nil:
				nd.kad.Close()
				nd.host.Close()
			case nd.host != nil:
				nd.host.Close()
			}
		})
	}
	wg.Wait()
	n.sim.Close()
}

// countingGater counts outbound dials, inbound connection attempts and
// accepted inbound connections (per second of virtual time since the
// network started) and, with a limit, refuses inbound connections beyond it.
type countingGater struct {
	start   time.Time
	limit   *rate.Limiter // nil: accept all
	dials   atomic.Int64
	refused atomic.Int64

	mu       sync.Mutex
	attempts map[int64]int
	inbound  map[int64]int
}

// errRefused is what admit returns for a connection over the limit.
var errRefused = errors.New("simnet: over the accept rate")

// admit is the QUIC listener's ConnContext: it runs when a client's first
// packet arrives, before the handshake; an error refuses the connection.
func (g *countingGater) admit(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	g.count(&g.attempts)
	if g.limit != nil && !g.limit.Allow() {
		g.refused.Add(1)
		return ctx, errRefused
	}
	return ctx, nil
}

func (g *countingGater) count(m *map[int64]int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if *m == nil {
		*m = map[int64]int{}
	}
	(*m)[int64(time.Since(g.start)/time.Second)]++
}

func (g *countingGater) InterceptPeerDial(peer.ID) bool {
	g.dials.Add(1)
	return true
}

func (g *countingGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

func (g *countingGater) InterceptAccept(network.ConnMultiaddrs) bool {
	g.count(&g.inbound)
	return true
}

func (g *countingGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *countingGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

func (g *countingGater) peak(m *map[int64]int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := 0
	for _, c := range *m {
		p = max(p, c)
	}
	return p
}

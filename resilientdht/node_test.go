package resilientdht_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// countingGater lets everything through and counts the dials to one peer.
type countingGater struct {
	target peer.ID
	dials  atomic.Int64
}

func (g *countingGater) InterceptPeerDial(p peer.ID) bool {
	if p == g.target {
		g.dials.Add(1)
	}
	return true
}
func (g *countingGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *countingGater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (g *countingGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g *countingGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// newHost is a TCP-only host on 127.0.0.1; the caller (usually a Node)
// closes it.
func newHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	o := append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.DisableRelay(), libp2p.DisableMetrics(),
	}, opts...)
	h, err := libp2p.New(o...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// quiet are health options that keep tests off the kernel's netlink.
var quiet = resilientdht.WithHealthOptions(healthmon.WithNetWatch(false))

// fast is a bootstrap profile for tests: 2 attempts, 100-200 ms apart.
func fast() resilience.RetryConfig {
	return resilience.RetryConfig{MaxAttempts: 2, InitialDelay: 100 * time.Millisecond, MaxDelay: 200 * time.Millisecond, BackoffMultiplier: 2}
}

func newNode(t *testing.T, h host.Host, opts ...resilientdht.Option) *resilientdht.Node {
	t.Helper()
	n, err := resilientdht.New(h, append([]resilientdht.Option{quiet}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func info(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

func TestOptionErrorsNameTheOption(t *testing.T) {
	id := peer.ID("x")
	bad := resilience.RetryConfig{MaxAttempts: 3} // no delays
	for _, tc := range []struct {
		name string
		opt  resilientdht.Option
		want string
	}{
		{"kind", resilientdht.WithDHT("kubo"), "WithDHT"},
		{"mode", resilientdht.WithMode(dht.ModeOpt(42)), "WithMode"},
		{"min peers", resilientdht.WithMinPeers(0), "WithMinPeers"},
		{"peer without addrs", resilientdht.WithBootstrapPeers(peer.AddrInfo{ID: id}), "WithBootstrapPeers"},
		{"peer without id", resilientdht.WithBootstrapPeers(peer.AddrInfo{}), "WithBootstrapPeers"},
		{"bootstrap retry", resilientdht.WithBootstrapRetry(bad), "WithBootstrapRetry"},
		{"peer retry", resilientdht.WithPeerRetry(bad), "WithPeerRetry"},
		{"backup file", resilientdht.WithBackupFile(""), "WithBackupFile"},
		{"registerer", resilientdht.WithRegisterer(nil), "WithRegisterer"},
		{"own dht", resilientdht.WithIpfsDHT(nil), "WithIpfsDHT"},
		{"own dual", resilientdht.WithDualDHT(&dual.DHT{}), "WithDualDHT"},
		{"dht options", resilientdht.WithDHTOptions(nil), "WithDHTOptions"},
		{"dialer options", resilientdht.WithDialerOptions(nil), "WithDialerOptions"},
		{"health options", resilientdht.WithHealthOptions(nil), "WithHealthOptions"},
		{"nil option", nil, "opts[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			defer h.Close()
			_, err := resilientdht.New(h, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			// An option error leaves the host alone.
			if len(h.Network().ListenAddresses()) == 0 {
				t.Fatal("host closed by an option error")
			}
		})
	}
	if _, err := resilientdht.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

// TestLoopbackAddressesOnLanDHT: B and C know only A. With loopback
// addresses kept in the LAN DHT (automatic on loopback), A's answers carry
// each other's addresses and both reach a table of 2; with them filtered,
// as kad-dht's LAN DHT does, they never find each other.
func TestLoopbackAddressesOnLanDHT(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []resilientdht.Option
		kept  bool
		table int
	}{
		{"auto", nil, true, 2},
		{"off", []resilientdht.Option{resilientdht.WithLoopbackAddressesOnLanDHT(false)}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			common := append([]resilientdht.Option{resilientdht.WithMinPeers(2), resilientdht.WithBootstrapRetry(fast())}, tc.opts...)
			ha := newHost(t)
			a := newNode(t, ha, common...)
			if a.LoopbackOnLanDHT() != tc.kept {
				t.Fatalf("LoopbackOnLanDHT = %v, want %v", a.LoopbackOnLanDHT(), tc.kept)
			}
			boot := resilientdht.WithBootstrapPeers(info(ha))
			b := newNode(t, newHost(t), append(common, boot)...)
			<-b.Bootstrapped()
			c := newNode(t, newHost(t), append(common, boot)...)
			<-c.Bootstrapped()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.kept {
				for _, n := range []*resilientdht.Node{b, c} {
					if err := n.WaitHealthy(ctx); err != nil {
						t.Fatalf("not healthy: %v (tables %v)", err, n.TableSizes())
					}
				}
			} else {
				// A refresh ran; give the LAN table time to take C anyway.
				time.Sleep(2 * time.Second)
			}
			if got := c.TableSizes()["lan"]; got != tc.table {
				t.Fatalf("C's LAN table = %d, want %d", got, tc.table)
			}
		})
	}
}

func TestLoopbackAutoIsOffWithANonLoopbackBootstrapPeer(t *testing.T) {
	other := newHost(t)
	defer other.Close()
	pi := peer.AddrInfo{ID: other.ID(), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.1.2.3/tcp/4001")}}
	n := newNode(t, newHost(t), resilientdht.WithBootstrapPeers(pi), resilientdht.WithBootstrapRetry(fast()))
	if n.LoopbackOnLanDHT() {
		t.Fatal("loopback kept with a bootstrap peer on 10.1.2.3")
	}
	n2 := newNode(t, newHost(t), resilientdht.WithBootstrapPeers(pi), resilientdht.WithLoopbackAddressesOnLanDHT(true))
	if !n2.LoopbackOnLanDHT() {
		t.Fatal("WithLoopbackAddressesOnLanDHT(true) ignored")
	}
}

func TestLANRunsAsServerUnlessClient(t *testing.T) {
	for _, tc := range []struct {
		mode dht.ModeOpt
		want dht.ModeOpt
	}{{dht.ModeAuto, dht.ModeServer}, {dht.ModeServer, dht.ModeServer}, {dht.ModeClient, dht.ModeClient}} {
		n := newNode(t, newHost(t), resilientdht.WithDHT(resilientdht.LAN), resilientdht.WithMode(tc.mode))
		d := n.Routing().(*dht.IpfsDHT)
		if d.Mode() != tc.want {
			t.Errorf("mode %v: LAN DHT runs as %v, want %v", tc.mode, d.Mode(), tc.want)
		}
		if _, ok := n.TableSizes()["lan"]; !ok {
			t.Errorf("TableSizes() = %v, want a lan entry", n.TableSizes())
		}
	}
}

// TestKadDHTDoesNotDialBootstrapPeers: every dial to the (unreachable)
// bootstrap peer is one of the dialer's; kad-dht's fixLowPeers, which runs
// at start with an empty table, adds none. The control case gives kad-dht
// the peers itself and sees its extra dial, so the count can tell.
func TestKadDHTDoesNotDialBootstrapPeers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kadOwns bool
	}{{"resilientdht", false}, {"kad-dht given the peers too", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dead := deadPeer(t)
			g := &countingGater{target: dead.ID}
			opts := []resilientdht.Option{
				resilientdht.WithDHT(resilientdht.Plain),
				resilientdht.WithBootstrapPeers(dead),
				resilientdht.WithBootstrapRetry(fast()),
				resilientdht.WithHealthOptions(healthmon.WithCheckInterval(time.Hour)),
			}
			if tc.kadOwns {
				opts = append(opts, resilientdht.WithDHTOptions(dht.BootstrapPeers(dead)))
			}
			n := newNode(t, newHost(t, libp2p.ConnectionGater(g)), opts...)
			if _, err := n.BootstrapResult(); !errors.Is(err, resilientdht.ErrBootstrapRunning) {
				t.Fatalf("BootstrapResult right after New: %v, want ErrBootstrapRunning (two dials 100 ms apart)", err)
			}
			<-n.Bootstrapped()
			time.Sleep(200 * time.Millisecond) // kad-dht's first fixLowPeers runs right after New
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			ours := n.Host().Manager().Stats().TotalAttempts
			all := uint64(g.dials.Load())
			t.Logf("dials to the bootstrap peer: %d, by the dialer: %d", all, ours)
			if ours == 0 {
				t.Fatal("the Bootstrapper never dialled")
			}
			if extra := all > ours; extra != tc.kadOwns {
				t.Fatalf("dials %d, dialer's %d: kad-dht dialled = %v, want %v", all, ours, extra, tc.kadOwns)
			}
		})
	}
}

// deadPeer is a peer ID with a loopback address nobody listens on.
func deadPeer(t *testing.T) peer.AddrInfo {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/" + strings.Split(l.Addr().String(), ":")[1])
	l.Close()
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}}
}

// TestEmptyTableWarns: the only bootstrap peer speaks no DHT protocol. The
// node connects, its table stays empty, it says why at WARN and stays
// unhealthy.
func TestEmptyTableWarns(t *testing.T) {
	if err := logging.SetLogLevel("resilience/resilientdht", "warn"); err != nil {
		t.Fatal(err)
	}
	defer logging.SetLogLevel("resilience/resilientdht", "error")
	logs := logging.NewPipeReader(logging.PipeFormat(logging.JSONOutput), logging.PipeLevel(logging.LevelWarn))
	defer logs.Close()
	var mu sync.Mutex
	var buf strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			k, err := logs.Read(b)
			mu.Lock()
			buf.Write(b[:k])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()

	bare := newHost(t) // no DHT
	defer bare.Close()
	n := newNode(t, newHost(t), resilientdht.WithDHT(resilientdht.LAN), resilientdht.WithMinPeers(1),
		resilientdht.WithBootstrapPeers(info(bare)), resilientdht.WithBootstrapRetry(fast()))
	<-n.Bootstrapped()
	res, err := n.BootstrapResult()
	if err != nil || len(res.Connected) != 1 || res.TableSize != 0 {
		t.Fatalf("BootstrapResult = %+v, %v; want 1 connected, table 0", res, err)
	}
	want := "speaks none of the DHT protocols this node runs [/ipfs/lan/kad/1.0.0]"
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("logs: %s", buf.String())
			mu.Unlock()
		}
	}()
	testnet.WaitFor(t, 5*time.Second, "the warning", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(buf.String(), want)
	})
	if n.IsHealthy() {
		t.Fatal("healthy with an empty table")
	}
	logs.Close()
	<-done
}

// TestCloseIsIdempotentAndClosesAll: Close twice, concurrently; the host
// and a DHT given by the caller are closed.
func TestCloseIsIdempotentAndClosesAll(t *testing.T) {
	h := newHost(t)
	own, err := dht.New(h, dht.Mode(dht.ModeServer))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	n, err := resilientdht.New(h, quiet, resilientdht.WithIpfsDHT(own), resilientdht.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	if n.Routing() != own {
		t.Fatal("Routing() is not the caller's DHT")
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = n.Close() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(h.Network().ListenAddresses()) != 0 {
		t.Fatal("host still listening after Close")
	}
	if own.Context().Err() == nil {
		t.Fatal("caller's DHT still running after Close")
	}
	if err := n.WaitHealthy(context.Background()); !errors.Is(err, resilientdht.ErrClosed) {
		t.Fatalf("WaitHealthy after Close = %v, want ErrClosed", err)
	}
	if fams, err := reg.Gather(); err != nil || len(fams) == 0 {
		t.Fatalf("no metrics registered (%d families, %v)", len(fams), err)
	}
}

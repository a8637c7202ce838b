package testnet_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	mh "github.com/multiformats/go-multihash"
	"go.uber.org/goleak"

	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 60 * time.Second

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, waitTimeout, what, cond)
}

// dial connects from a to b, bypassing the swarm dial backoff.
func dial(a, b *testnet.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Host().Connect(network.WithForceDirectDial(ctx, "test"), b.AddrInfo())
}

func connected(a, b *testnet.Node) bool {
	return a.Host().Network().Connectedness(b.ID()) == network.Connected
}

func disconnected(a, b *testnet.Node) func() bool {
	return func() bool { return len(a.Host().Network().ConnsToPeer(b.ID())) == 0 }
}

func TestRestartKeepsIdentityAndPort(t *testing.T) {
	a, b := testnet.NewNode(t), testnet.NewNode(t)
	addrs := a.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs() = %v, want one address", addrs)
	}
	if ip, err := manet.ToIP(addrs[0]); err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("Addrs()[0] = %v, want 127.0.0.1", addrs[0])
	}
	if port, err := addrs[0].ValueForProtocol(ma.P_TCP); err != nil || port == "0" {
		t.Fatalf("Addrs()[0] = %v, want a concrete TCP port", addrs[0])
	}
	if a.Host().ID() != a.ID() || !a.PrivKey().GetPublic().Equals(a.Host().Peerstore().PubKey(a.ID())) {
		t.Fatal("host identity differs from the node's key")
	}

	for cycle := range 3 {
		testnet.Connect(t, b, a)
		waitFor(t, "a to see b", func() bool { return connected(a, b) })

		a.Stop()
		a.Stop() // idempotent
		if a.Running() || a.Host() != nil {
			t.Fatalf("cycle %d: stopped node still running", cycle)
		}
		if got := a.AddrInfo(); got.ID != a.ID() || !slices.EqualFunc(got.Addrs, addrs, ma.Multiaddr.Equal) {
			t.Fatalf("cycle %d: AddrInfo while stopped = %v, want %s %v", cycle, got, a.ID(), addrs)
		}
		waitFor(t, "b to lose a", disconnected(b, a))
		if err := dial(b, a); err == nil {
			t.Fatalf("cycle %d: dial to a stopped node succeeded", cycle)
		}

		a.Start()
		a.Start() // no-op while running
		if !a.Running() || a.Host().ID() != a.ID() {
			t.Fatalf("cycle %d: restarted host has ID %s, want %s", cycle, a.Host().ID(), a.ID())
		}
		if got := a.Host().Network().ListenAddresses(); !slices.EqualFunc(got, addrs, ma.Multiaddr.Equal) {
			t.Fatalf("cycle %d: listening on %v after restart, want %v", cycle, got, addrs)
		}
		if err := dial(b, a); err != nil {
			t.Fatalf("cycle %d: dial to restarted node: %v", cycle, err)
		}
		// and the restarted node can dial out
		if err := a.Host().Network().ClosePeer(b.ID()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "b to lose a", disconnected(b, a))
		if err := dial(a, b); err != nil {
			t.Fatalf("cycle %d: dial from restarted node: %v", cycle, err)
		}
	}
}

func TestStartRetriesWhileThePortIsBusy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retry   time.Duration
		release time.Duration // when the other listener lets go of the port
		wantErr bool
	}{
		{"port freed within the retry window", testnet.DefaultStartRetry, time.Second, false},
		{"port stays busy", 200 * time.Millisecond, 2 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testnet.NewNode(t, testnet.WithStartRetry(tc.retry))
			addr := a.Addrs()[0]
			a.Stop()
			l, err := manet.Listen(addr)
			if err != nil {
				t.Fatalf("occupy %v: %v", addr, err)
			}
			released := make(chan struct{})
			go func() {
				defer close(released)
				time.Sleep(tc.release)
				_ = l.Close()
			}()
			err = a.TryStart()
			<-released
			if (err != nil) != tc.wantErr {
				t.Fatalf("TryStart() = %v, want error: %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := a.Host().Network().ListenAddresses(); len(got) != 1 || !got[0].Equal(addr) {
				t.Fatalf("listening on %v, want %v", got, addr)
			}
		})
	}
}

func TestIsolateAndRejoin(t *testing.T) {
	nodes := testnet.NewNetwork(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	testnet.ConnectAll(t, nodes...)
	waitFor(t, "full mesh", func() bool { return connected(a, b) && connected(a, c) && connected(b, c) })

	a.Isolate()
	if n := len(a.Host().Network().Conns()); n != 0 {
		t.Fatalf("isolated node still has %d conns", n)
	}
	waitFor(t, "b and c to lose a", func() bool { return disconnected(b, a)() && disconnected(c, a)() })
	if err := dial(a, b); !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
		t.Fatalf("dial out of isolated node: err = %v, want ErrGaterDisallowedConnection", err)
	}
	if err := dial(b, a); err == nil {
		t.Fatal("dial into isolated node succeeded")
	}
	if !connected(b, c) {
		t.Fatal("isolating a cut b from c")
	}

	// isolation survives a restart
	a.Stop()
	a.Start()
	if err := dial(c, a); err == nil {
		t.Fatal("dial into isolated, restarted node succeeded")
	}

	a.Rejoin()
	testnet.Connect(t, a, b)
	testnet.Connect(t, c, a) // c has a in its dial backoff; Connect bypasses it
	if !connected(a, b) || !connected(a, c) {
		t.Fatal("not connected after Rejoin")
	}
}

func TestGaterBlockPeer(t *testing.T) {
	nodes := testnet.NewNetwork(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.Gater().Block(b.ID())
	if err := dial(a, b); !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
		t.Fatalf("dial to blocked peer: err = %v, want ErrGaterDisallowedConnection", err)
	}
	// a refuses b only after the security handshake, by which time b may
	// already count the conn as established: b's dial may "succeed", but a
	// never accepts the conn and it is closed at once.
	_ = dial(b, a)
	waitFor(t, "b's conn to a to be closed", disconnected(b, a))
	if n := len(a.Host().Network().ConnsToPeer(b.ID())); n != 0 {
		t.Fatalf("a accepted %d conns from blocked b", n)
	}
	if err := dial(a, c); err != nil {
		t.Fatalf("dial to unblocked peer: %v", err)
	}
	a.Gater().Unblock(b.ID())
	if err := dial(b, a); err != nil {
		t.Fatalf("dial after Unblock: %v", err)
	}
}

func TestGater(t *testing.T) {
	x, y := peer.ID("x"), peer.ID("y")
	for _, tc := range []struct {
		name             string
		setup            func(*testnet.Gater)
		allowX, allowY   bool
		allowAcceptAtAll bool
	}{
		{"zero value allows all", func(*testnet.Gater) {}, true, true, true},
		{"block one", func(g *testnet.Gater) { g.Block(x) }, false, true, true},
		{"unblock", func(g *testnet.Gater) { g.Block(x, y); g.Unblock(x) }, true, false, true},
		{"block all", func(g *testnet.Gater) { g.BlockAll(true) }, false, false, false},
		{"block all off keeps peer blocks", func(g *testnet.Gater) { g.Block(y); g.BlockAll(true); g.BlockAll(false) }, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &testnet.Gater{}
			tc.setup(g)
			for _, p := range []struct {
				id   peer.ID
				want bool
			}{{x, tc.allowX}, {y, tc.allowY}} {
				up, _ := g.InterceptUpgraded(fakeConn{remote: p.id})
				got := []bool{g.Allows(p.id), g.InterceptPeerDial(p.id), g.InterceptAddrDial(p.id, nil),
					g.InterceptSecured(network.DirInbound, p.id, nil), up}
				for i, v := range got {
					if v != p.want {
						t.Errorf("peer %s check %d = %v, want %v", p.id, i, v, p.want)
					}
				}
			}
			if got := g.InterceptAccept(nil); got != tc.allowAcceptAtAll {
				t.Errorf("InterceptAccept = %v, want %v", got, tc.allowAcceptAtAll)
			}
		})
	}
}

type fakeConn struct {
	network.Conn
	remote peer.ID
}

func (c fakeConn) RemotePeer() peer.ID { return c.remote }

func TestNoListenNode(t *testing.T) {
	client := testnet.NewNode(t, testnet.WithNoListen())
	server := testnet.NewNode(t)
	if got := client.Addrs(); len(got) != 0 {
		t.Fatalf("client-only node has addrs %v", got)
	}
	if got := client.Host().Network().ListenAddresses(); len(got) != 0 {
		t.Fatalf("client-only node listens on %v", got)
	}
	testnet.ConnectAll(t, server, client) // must dial client -> server
	if !connected(server, client) {
		t.Fatal("not connected")
	}
	client.Stop()
	client.Start()
	testnet.Connect(t, client, server)
}

func TestDHTNetwork(t *testing.T) {
	nodes := testnet.NewNetwork(t, 5, testnet.WithDHT(dht.ModeServer))
	testnet.ConnectAll(t, nodes...)
	tablesFull := func() bool {
		for _, n := range nodes {
			if n.DHT().RoutingTable().Size() != len(nodes)-1 {
				return false
			}
		}
		return true
	}
	waitFor(t, "every routing table to hold the other 4 peers", tablesFull)

	// queries work between loopback peers
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := cid.NewCidV1(cid.Raw, must(mh.Sum([]byte(t.Name()), mh.SHA2_256, -1)))
	if err := nodes[1].DHT().Provide(ctx, key, true); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	provs, err := nodes[4].DHT().FindProviders(ctx, key)
	if err != nil || !slices.ContainsFunc(provs, func(ai peer.AddrInfo) bool { return ai.ID == nodes[1].ID() }) {
		t.Fatalf("FindProviders = %v, %v; want %s among them", provs, err, nodes[1].ID())
	}

	// a restart brings a fresh DHT that fills up again
	old := nodes[0].DHT()
	nodes[0].Stop()
	if nodes[0].DHT() != nil {
		t.Fatal("DHT() of a stopped node is not nil")
	}
	nodes[0].Start()
	if d := nodes[0].DHT(); d == nil || d == old {
		t.Fatal("restart did not create a new DHT")
	}
	testnet.ConnectAll(t, nodes...)
	waitFor(t, "routing tables to refill after restart", tablesFull)
}

func TestWithoutDHT(t *testing.T) {
	if d := testnet.NewNode(t).DHT(); d != nil {
		t.Fatal("DHT() without WithDHT is not nil")
	}
}

// fatalTB records Fatalf and ends the goroutine like testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = format
	runtime.Goexit()
}

func TestNewNetworkRejectsNegativeCount(t *testing.T) {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testnet.NewNetwork(f, -1)
	}()
	<-done
	if !strings.Contains(f.msg, "n must be >= 0") {
		t.Fatalf("NewNetwork(-1) failed with %q, want a message naming n", f.msg)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/boxo/bootstrap"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// TestOutageHarness measures, side by side in one run, what an outage costs a
// node with this module and a node with kubo's bootstrapper: 20 kad-dht server
// nodes on 127.0.0.1 and two victims, each a kad-dht server that knows 3 of
// them as bootstrap peers and looks up a random key every 10 s:
//
//   - "this module": resilientdht.New with its defaults (dialer with guards and
//     adaptive backoff, Bootstrapper with backup peers, health monitor);
//   - "kubo bootstrap": github.com/ipfs/boxo/bootstrap as kubo runs it
//     (DefaultBootstrapConfig: a round every 30 s while fewer than 4 peers are
//     connected, backup peers saved from the connected peers), kad-dht given
//     the bootstrap peers as kubo gives them.
//
// Both are cut off at the same time (every dial and accept refused by their
// connection gaters, connections closed) for each outage in RESILIENCE_OUTAGES
// (default 20s,60s,180s), then let back; the whole sequence is repeated
// RESILIENCE_RUNS times (default 3) on a fresh network. Measured per victim and
// outage: time from the network's return to health (>= 4 connected
// routing-table peers), and every dial the victim attempted during the outage
// (its gater counts them), by cause: for this module the monitor's probes, the
// dialer's rounds (Recover, keep-alive, retries) and the rest (kad-dht's own
// lookups and refreshes); for kubo the bootstrapper's dials and the rest.
// Each outage starts after a random wait of 0-30 s (drawn from the seed in
// RESILIENCE_SEED, printed), so that it falls at any phase of kubo's 30-s
// ticker, as a real outage would.
//
// Opt-in (about 7 minutes a run):
//
//	cd bench && RESILIENCE_LONG=1 go test -run TestOutageHarness -v -timeout 60m .
func TestOutageHarness(t *testing.T) {
	if os.Getenv("RESILIENCE_LONG") != "1" {
		t.Skip("long scenario (about 7 minutes a run): set RESILIENCE_LONG=1 to run the outage harness")
	}
	outages := []time.Duration{20 * time.Second, 60 * time.Second, 180 * time.Second}
	if s := os.Getenv("RESILIENCE_OUTAGES"); s != "" {
		outages = nil
		for _, f := range strings.Split(s, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d <= 0 {
				t.Fatalf("RESILIENCE_OUTAGES: bad duration %q", f)
			}
			outages = append(outages, d)
		}
	}
	runs := 3
	if s := os.Getenv("RESILIENCE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("RESILIENCE_RUNS: bad count %q", s)
		}
		runs = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RESILIENCE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RESILIENCE_SEED: bad seed %q", s)
		}
		seed = v
	}
	t.Logf("seed %d (RESILIENCE_SEED=%d replays the outage phases)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, seed))
	var all []sample
	for run := 1; run <= runs; run++ {
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) {
			all = append(all, runOutages(t, run, outages, rng)...)
		})
	}
	t.Log(summarize(all, outages))
}

// sample is one victim's measurement of one outage.
type sample struct {
	run       int
	contender string
	outage    time.Duration
	recovered time.Duration // -1: not within recoveryCap
	dials     dialCounts    // during the outage
	recDials  int64         // all dials from the return until healthy
}

// dialCounts are a victim's dials by cause.
type dialCounts struct {
	total   int64 // every dial the gater saw
	probes  int64 // this module: the monitor's probes
	rounds  int64 // this module: the dialer's other dials; kubo: the bootstrapper's
	kademla int64 // the rest: kad-dht's lookups and refreshes
}

func (d dialCounts) minus(o dialCounts) dialCounts {
	return dialCounts{d.total - o.total, d.probes - o.probes, d.rounds - o.rounds, d.kademla - o.kademla}
}

const (
	networkSize = 20
	minPeers    = 4
	recoveryCap = 150 * time.Second
)

func runOutages(t *testing.T, run int, outages []time.Duration, rng *mrand.Rand) []sample {
	nodes := testnet.NewNetwork(t, networkSize, testnet.WithDHT(dht.ModeServer))
	testnet.ConnectAll(t, nodes...)
	var boots []peer.AddrInfo
	for _, n := range nodes[:3] {
		boots = append(boots, n.AddrInfo())
	}
	mod := newModuleVictim(t, boots)
	kubo := newKuboVictim(t, boots)
	mod.g.Block(kubo.h.ID())
	kubo.g.Block(mod.h.ID())
	victims := []*victim{mod, kubo}
	for _, v := range victims {
		for _, nd := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), testnet.ConnectTimeout)
			err := v.h.Connect(ctx, nd.AddrInfo())
			cancel()
			if err != nil {
				t.Fatalf("%s: connect to %s: %v", v.name, nd.ID(), err)
			}
		}
	}
	mod.afterConnect(t)
	kubo.afterConnect(t)
	for _, v := range victims {
		testnet.StartLookups(t, v.d, 10*time.Second)
	}

	var out []sample
	for _, outage := range outages {
		for _, v := range victims {
			testnet.WaitFor(t, recoveryCap, v.name+" healthy before the outage", func() bool { return testnet.LiveTablePeers(v.h, v.d) >= minPeers })
		}
		time.Sleep(time.Duration(rng.Int64N(int64(30 * time.Second))))
		var d0 []dialCounts
		for _, v := range victims {
			d0 = append(d0, v.counts())
		}
		var wg sync.WaitGroup
		for _, v := range victims {
			wg.Go(func() { testnet.Isolate(v.h, v.g) })
		}
		wg.Wait()
		time.Sleep(outage)
		var d1 []dialCounts
		for _, v := range victims {
			d1 = append(d1, v.counts())
		}
		back := time.Now()
		for _, v := range victims {
			v.g.BlockAll(false)
		}
		res := make([]sample, len(victims))
		for i, v := range victims {
			wg.Go(func() {
				s := sample{run: run, contender: v.name, outage: outage, recovered: -1, dials: d1[i].minus(d0[i])}
				for deadline := back.Add(recoveryCap); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if testnet.LiveTablePeers(v.h, v.d) >= minPeers {
						s.recovered = time.Since(back)
						break
					}
				}
				s.recDials = v.counts().total - d1[i].total
				res[i] = s
			})
		}
		wg.Wait()
		for _, s := range res {
			t.Logf("run %d outage %4v %-15s healthy after %7v  dials during the outage %3d (probes %2d, rounds %2d, kad-dht %2d)  until healthy %2d",
				run, outage, s.contender, fmtDur(s.recovered), s.dials.total, s.dials.probes, s.dials.rounds, s.dials.kademla, s.recDials)
		}
		out = append(out, res...)
	}
	return out
}

// summarize prints medians (and ranges) per contender and outage.
func summarize(all []sample, outages []time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmedians over %d runs (range in brackets); dials during the outage by cause\n", countRuns(all))
	fmt.Fprintf(&b, "| outage | contender | healthy after return | dials in outage | probes | rounds / bootstrapper | kad-dht |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	for _, o := range outages {
		for _, c := range []string{"this module", "kubo bootstrap"} {
			var rec []time.Duration
			var tot, pr, rd, kd []int64
			for _, s := range all {
				if s.outage != o || s.contender != c {
					continue
				}
				r := s.recovered
				if r < 0 {
					r = recoveryCap
				}
				rec = append(rec, r)
				tot, pr, rd, kd = append(tot, s.dials.total), append(pr, s.dials.probes), append(rd, s.dials.rounds), append(kd, s.dials.kademla)
			}
			if len(rec) == 0 {
				continue
			}
			probes := fmt.Sprint(median(pr))
			if c != "this module" {
				probes = "–"
			}
			fmt.Fprintf(&b, "| %v | %s | %v [%v–%v] | %d [%d–%d] | %s | %d | %d |\n", o, c,
				fmtDur(median(rec)), fmtDur(slices.Min(rec)), fmtDur(slices.Max(rec)),
				median(tot), slices.Min(tot), slices.Max(tot), probes, median(rd), median(kd))
		}
	}
	return b.String()
}

func countRuns(all []sample) int {
	n := 0
	for _, s := range all {
		n = max(n, s.run)
	}
	return n
}

func median[T int64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

// victim is a kad-dht server node built for the harness, with a gater that
// counts dial attempts and can refuse everything.
type victim struct {
	name string
	h    host.Host
	d    *dht.IpfsDHT
	g    *testnet.Gater

	own    atomic.Int64 // dials of the resilience layer (this module: dialer; kubo: bootstrapper)
	probes atomic.Int64 // this module: the monitor's probes

	afterConnect func(t *testing.T)
}

func (v *victim) counts() dialCounts {
	total, own, probes := v.g.Dials(), v.own.Load(), v.probes.Load()
	return dialCounts{total: total, probes: probes, rounds: own - probes, kademla: total - own}
}

func newRawHost(t *testing.T, g *testnet.Gater) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		libp2p.ConnectionGater(g),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(rm),
	)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// loopbackDHT are the kad-dht options both victims use on 127.0.0.1.
func loopbackDHT() []dht.Option {
	return []dht.Option{
		dht.Mode(dht.ModeServer),
		dht.QueryFilter(func(any, peer.AddrInfo) bool { return true }),
		dht.RoutingTableFilter(func(any, peer.ID) bool { return true }),
		dht.AddressFilter(nil),
	}
}

// newModuleVictim runs this module as a user would: resilientdht.New with its
// defaults on a plain kad-dht (loopback addresses kept).
func newModuleVictim(t *testing.T, boots []peer.AddrInfo) *victim {
	g := &testnet.Gater{}
	h := newRawHost(t, g)
	v := &victim{name: "this module", g: g}
	node, err := resilientdht.New(h,
		resilientdht.WithDHT(resilientdht.Plain),
		resilientdht.WithDHTOptions(loopbackDHT()...),
		resilientdht.WithBootstrapPeers(boots...),
		resilientdht.WithBackupFile(filepath.Join(t.TempDir(), "backup-peers.json")),
		resilientdht.WithDialerOptions(dialer.WithMetricsTracer(dialCounter{&v.own})),
		resilientdht.WithHealthOptions(healthmon.WithMetricsTracer(probeCounter{&v.probes})),
	)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	v.h = node.Host()
	v.d = node.Routing().(*dht.IpfsDHT)
	v.afterConnect = func(t *testing.T) {
		<-v.d.RefreshRoutingTable()
		if err := node.Bootstrapper().SaveBackup(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bootstrap peers, %d backup peers", v.name, len(node.Bootstrapper().Peers()), len(node.Bootstrapper().BackupPeers()))
	}
	return v
}

// newKuboVictim runs kubo's bootstrapper (boxo/bootstrap) as kubo does: default
// config, backup peers saved from the connected peers and loaded from memory
// (kubo keeps them in its config file), kad-dht given the bootstrap peers.
func newKuboVictim(t *testing.T, boots []peer.AddrInfo) *victim {
	g := &testnet.Gater{}
	h := newRawHost(t, g)
	d, err := dht.New(h, append(loopbackDHT(), dht.BootstrapPeers(boots...))...)
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	v := &victim{name: "kubo bootstrap", h: h, d: d, g: g}
	t.Cleanup(func() {
		_ = d.Close()
		_ = h.Close()
	})
	var mu sync.Mutex
	var saved []peer.AddrInfo
	load := func(context.Context) []peer.AddrInfo {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(saved)
	}
	save := func(_ context.Context, pis []peer.AddrInfo) {
		mu.Lock()
		defer mu.Unlock()
		saved = slices.Clone(pis)
	}
	v.afterConnect = func(t *testing.T) {
		cfg := bootstrap.BootstrapConfigWithPeers(boots, bootstrap.WithBackupPeers(load, save))
		closer, err := bootstrap.Bootstrap(h.ID(), countingHost{Host: h, dials: &v.own}, d, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closer.Close() })
		testnet.WaitFor(t, time.Minute, "kubo's first backup save", func() bool { return len(load(context.Background())) > 0 })
		t.Logf("%s: %d bootstrap peers, %d backup peers", v.name, len(boots), len(load(context.Background())))
	}
	return v
}

// countingHost counts the Connect calls that dial (the peer is not connected).
type countingHost struct {
	host.Host
	dials *atomic.Int64
}

func (h countingHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	if h.Network().Connectedness(pi.ID) != network.Connected {
		h.dials.Add(1)
	}
	return h.Host.Connect(ctx, pi)
}

// dialCounter counts the dialer's dials (a retry inside one attempt after the
// swarm's own backoff refused it counts too, as the gater sees it).
type dialCounter struct{ n *atomic.Int64 }

func (c dialCounter) DialAttempted(dialer.ErrorClass) { c.n.Add(1) }
func (dialCounter) ConnectJoined()                    {}
func (dialCounter) SwarmBackoffCleared()              {}
func (dialCounter) ReconnectStarted()                 {}
func (dialCounter) ReconnectSucceeded()               {}
func (dialCounter) ReconnectRoundFailed()             {}
func (dialCounter) RetryEventDropped()                {}

// probeCounter counts the monitor's probes.
type probeCounter struct{ n *atomic.Int64 }

func (probeCounter) CheckCompleted(healthmon.Status, int) {}
func (probeCounter) StatusChanged(_, _ healthmon.Status)  {}
func (c probeCounter) ProbeCompleted(bool)                { c.n.Add(1) }
func (probeCounter) RecoveryStarted(healthmon.Trigger)    {}
func (probeCounter) RecoveryCompleted(bool)               {}

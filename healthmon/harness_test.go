package healthmon_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
)

// TestRecoveryHarness measures recovery side by side in one run: N=20 kad-dht
// server nodes on 127.0.0.1 and two extra "victim" nodes, one with this module's
// stack (dialer, bootstrap.Bootstrapper with 3 bootstrap peers and backup peers
// saved from its routing table, this package's monitor with default options), one
// with kad-dht alone (the same 3 bootstrap peers, so its fixLowPeers can use them).
// Both victims look up a random key every 10 s, as a node in use does, so their
// routing tables empty during an outage as they would. Both are cut off at the
// same time (every dial and accept refused, connections closed) for each outage in
// RESILIENCE_OUTAGES (default 20s,40s,60s), then let back. Measured per victim:
// time from the network's return to health (>= 4 connected routing-table peers),
// and dial attempts (counted by the victim's connection gater) during the outage
// and during recovery.
//
// Opt-in: RESILIENCE_LONG=1 go test -run TestRecoveryHarness -v -timeout 30m ./healthmon/
//
// Runs on the 2-core development machine (outage 20 s / 40 s / 60 s):
//
//	monitor + Bootstrapper  healthy after 2.1 s / 4.9 s / 0.5 s   probes 4 / 8 / 11
//	  (plain recoverer)                   1.8 s / 3.4 s / 4.9 s   probes 4 / 8 / 12
//	monitor + Bootstrapper, after the probe-spacing and Recover fixes
//	                        healthy after 2.8 s / 3.9 s / 4.9 s   probes 4 / 8 / 12
//	kad-dht alone           healthy after 100 s / 80 s  / 60 s    (2-minute fixLowPeers tick)
//
// All dial attempts of the victims during the outages (lookups every 10 s
// included) were 27-48 for the monitored node and 28-73 for kad-dht alone.
func TestRecoveryHarness(t *testing.T) {
	if os.Getenv("RESILIENCE_LONG") != "1" {
		t.Skip("long scenario (several minutes): set RESILIENCE_LONG=1 to run the recovery measurement")
	}
	outages := []time.Duration{20 * time.Second, 40 * time.Second, 60 * time.Second}
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
	const (
		n           = 20
		minPeers    = healthmon.DefaultMinPeers
		recoveryCap = 150 * time.Second // kad-dht's fixLowPeers ticks every 2 minutes
	)

	nodes := testnet.NewNetwork(t, n, testnet.WithDHT(dht.ModeServer))
	testnet.ConnectAll(t, nodes...)
	bootPeers := otherInfos(nodes[:3])

	mon := newVictim(t, "monitor", bootPeers)
	base := newVictim(t, "kad-dht alone", bootPeers)
	mon.g.Block(base.h.ID())
	base.g.Block(mon.h.ID())
	for _, v := range []*victim{mon, base} {
		for _, nd := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), testnet.ConnectTimeout)
			err := v.h.Connect(ctx, nd.AddrInfo())
			cancel()
			if err != nil {
				t.Fatalf("%s: connect to %s: %v", v.name, nd.ID(), err)
			}
		}
	}

	// The monitored victim runs the real stack: dialer, Bootstrapper with backup
	// peers saved from its routing table (up to 20), monitor with default options.
	dh, err := dialer.Wrap(mon.h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dh.Close() })
	boot, err := bootstrap.New(dh, bootstrap.DHT(mon.d), bootPeers,
		bootstrap.WithBackupFile(filepath.Join(t.TempDir(), "backup.json")))
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	if err := boot.SaveBackup(); err != nil {
		t.Fatal(err)
	}
	t.Logf("bootstrap peers %d, backup peers %d", len(boot.Peers()), len(boot.BackupPeers()))
	rec := &recordingRecoverer{Recoverer: boot}
	m, err := healthmon.New(dh, bootstrap.DHT(mon.d), healthmon.WithRecoverer(rec), healthmon.WithManager(dh.Manager()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := m.Subscribe()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*victim{mon, base} {
		testnet.StartLookups(t, v.d, 10*time.Second)
	}

	type result struct {
		victim        string
		outage        time.Duration
		recovered     time.Duration // -1: not within recoveryCap
		reported      time.Duration // monitor only: Healthy reported
		dialsOutage   int64
		dialsRecovery int64
		recDials      int // monitor only: dials of its recoverer during the outage; -1 otherwise
	}
	var results []result
	for _, outage := range outages {
		for _, v := range []*victim{mon, base} {
			waitUntil(t, v.name+" healthy before the outage", func() bool { return testnet.LiveTablePeers(v.h, v.d) >= minPeers })
		}
		for len(sub) > 0 {
			<-sub
		}
		start := time.Now()
		d0 := [2]int64{mon.g.Dials(), base.g.Dials()}
		var wg sync.WaitGroup
		for _, v := range []*victim{mon, base} {
			wg.Go(func() { testnet.Isolate(v.h, v.g) })
		}
		wg.Wait()
		time.Sleep(outage)
		d1 := [2]int64{mon.g.Dials(), base.g.Dials()}
		back := time.Now()
		recDials := len(rec.probesSince(start))
		mon.g.BlockAll(false)
		base.g.BlockAll(false)

		var mu sync.Mutex
		runResults := make([]result, 2)
		for i, v := range []*victim{mon, base} {
			wg.Go(func() {
				r := result{victim: v.name, outage: outage, recovered: -1, reported: -1, recDials: -1, dialsOutage: d1[i] - d0[i]}
				deadline := back.Add(recoveryCap)
				for time.Now().Before(deadline) {
					if testnet.LiveTablePeers(v.h, v.d) >= minPeers {
						r.recovered = time.Since(back)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				r.dialsRecovery = v.g.Dials() - d1[i]
				mu.Lock()
				runResults[i] = r
				mu.Unlock()
			})
		}
		wg.Wait()
		runResults[0].recDials = recDials
		timeout := time.After(recoveryCap)
	reported:
		for {
			select {
			case r := <-sub:
				if r.Status == healthmon.Healthy {
					runResults[0].reported = r.Timestamp.Sub(back)
					break reported
				}
			case <-timeout:
				break reported
			}
		}
		for _, r := range runResults {
			recDials := "-"
			if r.recDials >= 0 {
				recDials = fmt.Sprint(r.recDials)
			}
			t.Logf("outage %v  %-14s healthy after %8v  reported %8v  dial attempts during outage %3d (probes %2s)  while recovering %3d",
				r.outage, r.victim, fmtDur(r.recovered), fmtDur(r.reported), r.dialsOutage, recDials, r.dialsRecovery)
		}
		results = append(results, runResults...)
		if runResults[1].recovered < 0 { // let kad-dht alone catch up for the next run
			base.reconnect(t, bootPeers)
		}
	}
	t.Log("summary (time from the network's return to >= 4 connected routing-table peers; all dial attempts of")
	t.Log("the victim during the outage, its lookups included; the monitor's probes in parentheses):")
	for _, r := range results {
		extra := ""
		if r.recDials >= 0 {
			extra = fmt.Sprintf(" (probes %d)", r.recDials)
		}
		t.Logf("  %-14s outage %4v: %8v, %3d dials%s", r.victim, r.outage, fmtDur(r.recovered), r.dialsOutage, extra)
	}
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(10 * time.Millisecond).String()
}

// victim is a kad-dht server node built for the harness, with a gater that counts
// dial attempts and can refuse everything.
type victim struct {
	name string
	h    host.Host
	d    *dht.IpfsDHT
	g    *testnet.Gater
}

func newVictim(t *testing.T, name string, bootstrap []peer.AddrInfo) *victim {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	g := &testnet.Gater{}
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
	d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.BootstrapPeers(bootstrap...),
		dht.QueryFilter(func(any, peer.AddrInfo) bool { return true }),
		dht.RoutingTableFilter(func(any, peer.ID) bool { return true }),
		dht.AddressFilter(nil))
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Close()
		_ = h.Close()
	})
	return &victim{name: name, h: h, d: d, g: g}
}

func (v *victim) reconnect(t *testing.T, peers []peer.AddrInfo) {
	for _, pi := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := v.h.Connect(network.WithForceDirectDial(ctx, "harness"), pi); err != nil {
			t.Logf("%s: reconnect %s: %v", v.name, pi.ID, err)
		}
		cancel()
	}
	<-v.d.RefreshRoutingTable()
}

package simnet_test

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/chiral-network/go-libp2p-resilience/internal/simnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func long(t *testing.T) {
	if os.Getenv("RESILIENCE_LONG") != "1" {
		t.Skip("long scenario: set RESILIENCE_LONG=1 to run it")
	}
}

func seed(t *testing.T) uint64 {
	t.Helper()
	v := os.Getenv("RESILIENCE_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	s, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("RESILIENCE_SEED=%q: want an unsigned decimal integer: %v", v, err)
	}
	return s
}

func nodes(t *testing.T, def int) int {
	t.Helper()
	v := os.Getenv("RESILIENCE_SIM_NODES")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 {
		t.Fatalf("RESILIENCE_SIM_NODES=%q: want an integer of at least 10", v)
	}
	return n
}

// waitHealthy advances virtual time in steps of a second until every node of
// set is healthy or timeout passes; it returns each node's time to its first
// healthy check since t0 (sorted; never for nodes never healthy).
func waitHealthy(t *testing.T, set []*simnet.Node, t0 time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	first := make(map[*simnet.Node]time.Duration, len(set))
	for i := 0; time.Since(t0) <= timeout; i++ {
		if i > 0 && i%30 == 0 {
			t.Logf("virtual %v: %d of %d healthy at least once", time.Since(t0).Round(time.Second), len(first), len(set))
		}
		all := true
		for _, nd := range set {
			if nd.Healthy() {
				if _, ok := first[nd]; !ok {
					first[nd] = time.Since(t0)
				}
			} else {
				all = false
			}
		}
		if all {
			break
		}
		time.Sleep(time.Second)
	}
	out := make([]time.Duration, 0, len(set))
	for _, nd := range set {
		if d, ok := first[nd]; ok {
			out = append(out, d)
		} else {
			out = append(out, never)
		}
	}
	slices.Sort(out)
	return out
}

// never marks a node that was never healthy; it sorts last.
const never = time.Duration(math.MaxInt64)

// pct formats the times by which p % of the nodes were healthy.
func pct(d []time.Duration, ps ...float64) string {
	var parts []string
	for _, p := range ps {
		x := d[max(0, min(len(d)-1, int(math.Ceil(p/100*float64(len(d))))-1))]
		if x == never {
			parts = append(parts, "never")
		} else {
			parts = append(parts, x.Round(time.Second).String())
		}
	}
	return strings.Join(parts, " / ")
}

func heapMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse+ms.StackInuse) / (1 << 20)
}

// A small network bootstraps in virtual time and every node becomes
// healthy: the package works under synctest, with no goroutine left behind.
func TestSmallNetworkBootstraps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := simnet.New(simnet.Config{Nodes: 12, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		d := waitHealthy(t, net.Nodes, time.Now(), 2*time.Minute)
		if d[len(d)-1] == never {
			t.Fatalf("not every node healthy within 2 minutes of virtual time: %v", d)
		}
	})
}

// TestBootstrapScale: N nodes (default 1,000) start at once and bootstrap
// from 3 bootstrap nodes.
//
//	RESILIENCE_LONG=1 go test -run TestBootstrapScale -v -timeout 60m ./internal/simnet/
func TestBootstrapScale(t *testing.T) {
	long(t)
	n, s := nodes(t, 1000), seed(t)
	t.Logf("%d nodes, seed %d (replay: RESILIENCE_SEED=%d)", n, s, s)
	before := heapMiB()
	wall := time.Now()
	var virtual time.Duration
	var report string
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		net, err := simnet.New(simnet.Config{Nodes: n, Seed: s})
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		d := waitHealthy(t, net.Nodes, t0, 10*time.Minute)
		var dials []int64
		peak := 0
		for _, nd := range net.Nodes {
			dials = append(dials, nd.Dials())
			if nd.Boot {
				peak = max(peak, nd.PeakInboundPerSecond())
			}
		}
		slices.Sort(dials)
		sum := int64(0)
		for _, x := range dials {
			sum += x
		}
		mem := (heapMiB() - before) / float64(n)
		if p := os.Getenv("RESILIENCE_SIM_HEAPPROFILE"); p != "" {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		virtual = time.Since(t0)
		report = fmt.Sprintf("healthy 50/90/99/100 %%: %s; dials per node: mean %.1f, max %d; peak new inbound connections per second at a bootstrap node: %d; memory per node %.2f MiB (heap+stacks)",
			pct(d, 50, 90, 99, 100), float64(sum)/float64(n), dials[len(dials)-1], peak, mem)
		if d[len(d)-1] == never {
			t.Errorf("not every node healthy within 10 minutes: %s", report)
		}
	})
	w := time.Since(wall)
	t.Logf("%d nodes: %s; %v virtual in %v wall (%.1f s wall per simulated minute)", n, report,
		virtual.Round(time.Second), w.Round(time.Second), w.Seconds()/virtual.Minutes())
}

// TestCutOff: 30 % of the nodes (bootstrap nodes spared) lose their network
// for 60 s, then get it back: how long until each is healthy again, and how
// many dials that cost, with this module and with kad-dht alone, side by side
// on the same seed.
//
//	RESILIENCE_LONG=1 go test -run TestCutOff -v -timeout 60m ./internal/simnet/
func TestCutOff(t *testing.T) {
	long(t)
	n, s := nodes(t, 300), seed(t)
	t.Logf("%d nodes, seed %d (replay: RESILIENCE_SEED=%d)", n, s, s)
	const outage, recoveryWait = 60 * time.Second, 15 * time.Minute
	var rows []string
	for _, kadOnly := range []bool{false, true} {
		name := "this module (resilientdht.New)"
		if kadOnly {
			name = "kad-dht alone"
		}
		wall := time.Now()
		var virtual time.Duration
		var row string
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			net, err := simnet.New(simnet.Config{Nodes: n, Seed: s, KadOnly: kadOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			if d := waitHealthy(t, net.Nodes, t0, 10*time.Minute); d[len(d)-1] == never {
				t.Fatalf("%s: not every node healthy before the outage: %s", name, pct(d, 50, 90, 100))
			}
			time.Sleep(30 * time.Second) // settle
			var victims []*simnet.Node
			for _, i := range net.Rand.Perm(n - 3)[:n*3/10] {
				victims = append(victims, net.Nodes[3+i])
			}
			dials := func() int64 {
				var sum int64
				for _, nd := range victims {
					sum += nd.Dials()
				}
				return sum
			}
			d0 := dials()
			net.Cut(victims...)
			time.Sleep(outage)
			down := 0
			for _, nd := range victims {
				if !nd.Healthy() {
					down++
				}
			}
			net.Restore(victims...)
			tBack := time.Now()
			d := waitHealthy(t, victims, tBack, recoveryWait) // kad-dht refreshes its table every 10 minutes
			others := 0
			for _, nd := range net.Nodes {
				if !slices.Contains(victims, nd) && !nd.Healthy() {
					others++
				}
			}
			virtual = time.Since(t0)
			row = fmt.Sprintf("| %s | %d of %d unhealthy at the end of the outage | %s | %.1f | %d |",
				name, down, len(victims), pct(d, 50, 90, 99, 100), float64(dials()-d0)/float64(len(victims)), others)
		})
		w := time.Since(wall)
		t.Logf("%s: %v virtual in %v wall", name, virtual.Round(time.Second), w.Round(time.Second))
		rows = append(rows, row)
	}
	t.Logf("\n%d nodes, 30 %% cut off for %v (packets lost, QUIC times out)\n| stack | victims | victims healthy again after the network returned: 50 / 90 / 99 / 100 %% (never: not within %v) | dials per victim (outage + recovery) | other nodes unhealthy at the end |\n|---|---|---|---|---|\n%s",
		n, outage, recoveryWait, strings.Join(rows, "\n"))
}

// TestBootstrapHerd: every node starts (a whole-fleet restart) while the 3
// bootstrap nodes are down; they come back after 60 s and each accepts at
// most K new connections per second, refusing the rest. For each jitter
// strategy of the ForDHTBootstrap profile: the drain time (until every node
// is healthy, from the bootstrap nodes' return) and the refused connections.
//
//	RESILIENCE_LONG=1 go test -run TestBootstrapHerd -v -timeout 60m ./internal/simnet/
func TestBootstrapHerd(t *testing.T) {
	long(t)
	n, s := nodes(t, 300), seed(t)
	k := float64(max(5, n/20)) // bootstrap accept rate, connections per second
	if v := os.Getenv("RESILIENCE_SIM_ACCEPT_RATE"); v != "" {
		var err error
		if k, err = strconv.ParseFloat(v, 64); err != nil || k <= 0 {
			t.Fatalf("RESILIENCE_SIM_ACCEPT_RATE=%q: want a positive number", v)
		}
	}
	t.Logf("%d nodes, bootstrap nodes accept %.0f new connections/s, seed %d (replay: RESILIENCE_SEED=%d)", n, k, s, s)
	const down = 60 * time.Second
	var rows []string
	for _, j := range []resilience.JitterStrategy{resilience.JitterProportional, resilience.JitterFull, resilience.JitterEqual, resilience.JitterDecorrelated} {
		cfg := resilience.ForDHTBootstrap()
		cfg.Jitter = j
		wall := time.Now()
		var row string
		synctest.Test(t, func(t *testing.T) {
			net, err := simnet.New(simnet.Config{Nodes: n, Seed: s, BootstrapRetry: &cfg, BootAcceptRate: k})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			boot := net.Nodes[:3]
			net.Cut(boot...)
			time.Sleep(down)
			net.Restore(boot...)
			tBack := time.Now()
			d := waitHealthy(t, net.Nodes, tBack, 15*time.Minute)
			var refused, dials int64
			peak := 0
			for _, nd := range net.Nodes {
				dials += nd.Dials()
				if nd.Boot {
					refused += nd.Refused()
					peak = max(peak, nd.PeakInboundPerSecond())
				}
			}
			row = fmt.Sprintf("| %s | %s | %d | %.1f | %d |", j, pct(d, 50, 90, 99, 100), refused, float64(dials)/float64(n), peak)
		})
		t.Logf("%s: %v wall", j, time.Since(wall).Round(time.Second))
		rows = append(rows, row)
	}
	t.Logf("\n%d nodes start while the 3 bootstrap nodes are down for %v; then each accepts %.0f new connections/s\n| jitter (ForDHTBootstrap) | all healthy after the bootstrap nodes' return: 50 / 90 / 99 / 100 %% (drain) | connections refused | dials per node | peak accepted per second at a bootstrap node |\n|---|---|---|---|---|\n%s",
		n, down, k, strings.Join(rows, "\n"))
}

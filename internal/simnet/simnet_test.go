package simnet_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
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

// envInt reads a positive integer from the environment, def when unset.
func envInt(t *testing.T, name string, def, least int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want an integer of at least %d", name, v, least)
	}
	return n
}

func nodes(t *testing.T, def int) int { return envInt(t, "RESILIENCE_SIM_NODES", def, 10) }

// joinOver is how long the nodes take to start (RESILIENCE_SIM_JOIN seconds,
// default 60; 0: all at the same instant), see simnet.Config.JoinOver.
func joinOver(t *testing.T) time.Duration {
	return time.Duration(envInt(t, "RESILIENCE_SIM_JOIN", 60, 0)) * time.Second
}

// defaultNodes is the scenarios' network size without RESILIENCE_SIM_NODES,
// so that RESILIENCE_LONG=1 go test ./... stays within an hour or so; 1,000
// nodes fit in 24 GiB when they join over 5 minutes (RESILIENCE_SIM_JOIN=300:
// 11.7 GiB peak RSS), see the README.
const defaultNodes = 300

// watch samples the health of a set of nodes once per second of virtual
// time: how many are healthy at each second, and when each first was.
type watch struct {
	set     []*simnet.Node
	healthy func(*simnet.Node) bool
	t0      time.Time
	first   map[*simnet.Node]time.Duration // since t0
	counts  []int                          // healthy nodes at each sample, one a second

	progress func(format string, args ...any) // every 30 samples, if set
	wall0    time.Duration
}

func newWatch(set []*simnet.Node, healthy func(*simnet.Node) bool) *watch {
	w := &watch{set: set, healthy: healthy, wall0: wallNow()}
	w.restart()
	w.sample()
	return w
}

// restart forgets when nodes were first healthy and counts from now on;
// the samples (the plot) go on.
func (w *watch) restart() {
	w.t0 = time.Now()
	w.first = make(map[*simnet.Node]time.Duration, len(w.set))
}

// sample records the healthy nodes now and reports whether all are.
func (w *watch) sample() bool {
	c := 0
	for _, nd := range w.set {
		if w.healthy(nd) {
			c++
			if _, ok := w.first[nd]; !ok {
				from := w.t0 // or the node's start, if later (Config.JoinOver)
				if s := nd.Started(); s.After(from) {
					from = s
				}
				w.first[nd] = time.Since(from)
			}
		}
	}
	w.counts = append(w.counts, c)
	if w.progress != nil && len(w.counts)%30 == 0 {
		w.progress("%v virtual: %d of %d healthy (%v wall so far)", time.Since(w.t0).Round(time.Second), c, len(w.set), (wallNow() - w.wall0).Round(time.Second))
	}
	return c == len(w.set)
}

// sleep lets d pass, sampling every second.
func (w *watch) sleep(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(time.Second)
		w.sample()
	}
}

// untilAll samples every second until every node has been healthy since
// the last restart, or timeout passes.
func (w *watch) untilAll(timeout time.Duration) {
	for end := w.t0.Add(timeout); len(w.first) < len(w.set) && time.Now().Before(end); {
		time.Sleep(time.Second)
		w.sample()
	}
}

// times returns each node's time to its first healthy sample since the last
// restart or its own start, whichever was later, sorted (never for nodes
// never healthy).
func (w *watch) times() []time.Duration {
	out := make([]time.Duration, 0, len(w.set))
	for _, nd := range w.set {
		if d, ok := w.first[nd]; ok {
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

// memory is the process's memory, in MiB, after a garbage collection.
type memory struct{ heap, stacks, rss, peakRSS float64 }

func memNow() memory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memory{heap: mib(ms.HeapInuse), stacks: mib(ms.StackInuse)}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for l := range strings.Lines(string(b)) {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				m.rss = kb / 1024
			case "VmHWM:":
				m.peakRSS = kb / 1024
			}
		}
	}
	return m
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// writePlot writes a PNG of the series to RESILIENCE_SIM_PLOTS (default the
// temporary directory) and logs where.
func writePlot(t *testing.T, name, title string, yMax int, series []simnet.Series) {
	t.Helper()
	var buf bytes.Buffer
	if err := simnet.Plot(&buf, title, yMax, series); err != nil {
		t.Errorf("plot: %v", err)
		return
	}
	dir := os.Getenv("RESILIENCE_SIM_PLOTS")
	if dir == "" {
		dir = os.TempDir()
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Errorf("plot: %v", err)
		return
	}
	t.Logf("plot of healthy nodes over time: %s", p)
}

func writeHeapProfile(t *testing.T) {
	p := os.Getenv("RESILIENCE_SIM_HEAPPROFILE")
	if p == "" {
		return
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
	g, err := os.Create(p + ".goroutines")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := pprof.Lookup("goroutine").WriteTo(g, 0); err != nil {
		t.Fatal(err)
	}
}

func isHealthy(nd *simnet.Node) bool    { return nd.Healthy() }
func tableHealthy(nd *simnet.Node) bool { return nd.TableHealthy() }

// dialStats returns the mean and the largest count of outbound dials of set.
func dialStats(set []*simnet.Node) (mean float64, most int64) {
	var sum int64
	for _, nd := range set {
		sum += nd.Dials()
		most = max(most, nd.Dials())
	}
	return float64(sum) / float64(len(set)), most
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
		w := newWatch(net.Nodes, isHealthy)
		w.untilAll(2 * time.Minute)
		if d := w.times(); d[len(d)-1] == never {
			t.Fatalf("not every node healthy within 2 minutes of virtual time: %v", d)
		}
		if mean, _ := dialStats(net.Nodes); mean == 0 {
			t.Error("no dials counted")
		}
	})
}

// With JoinOver the nodes start one by one, evenly spread; each is healthy
// soon after its own start; Close in the middle of the join stops it.
func TestJoinOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		net, err := simnet.New(simnet.Config{Nodes: 13, Seed: 4, JoinOver: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		if !net.Nodes[2].Up() || net.Nodes[3].Up() {
			t.Fatalf("at New: bootstrap node up %v, first other node up %v; want true, false", net.Nodes[2].Up(), net.Nodes[3].Up())
		}
		w := newWatch(net.Nodes, isHealthy)
		w.untilAll(2 * time.Minute)
		if err := net.Joined(); err != nil {
			t.Fatal(err)
		}
		for i, nd := range net.Nodes[3:] {
			if want := time.Duration(i+1) * 2 * time.Second; nd.Started().Sub(t0) != want {
				t.Errorf("node %d started at %v, want %v", nd.Index, nd.Started().Sub(t0), want)
			}
		}
		if d := w.times(); d[len(d)-1] > 10*time.Second {
			t.Errorf("times to healthy from each node's start: %v; want all within 10 s", d)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		net, err := simnet.New(simnet.Config{Nodes: 13, Seed: 4, JoinOver: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		net.Close() // two nodes joined; the join stops, nothing is left running
		if net.Nodes[12].Up() {
			t.Error("the last node started although Close came first")
		}
	})
}

// A cut node loses its connections (QUIC idle timeout) and its health, and
// gets both back once restored; kad-dht alone runs too.
func TestCutAndRestore(t *testing.T) {
	for _, kadOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("KadOnly=%v", kadOnly), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net, err := simnet.New(simnet.Config{Nodes: 12, Seed: 2, KadOnly: kadOnly})
				if err != nil {
					t.Fatal(err)
				}
				defer net.Close()
				w := newWatch(net.Nodes, tableHealthy)
				if w.untilAll(2 * time.Minute); len(w.first) < len(net.Nodes) {
					t.Fatalf("not every node healthy: %v", w.times())
				}
				victim := net.Nodes[11]
				net.Cut(victim)
				time.Sleep(time.Minute)
				if victim.TablePeersConnected() != 0 {
					t.Fatalf("cut node still connected to %d table peers after a minute", victim.TablePeersConnected())
				}
				net.Restore(victim)
				if kadOnly {
					return // kad-dht alone may take its 10-minute refresh; TestCutOff measures it
				}
				v := newWatch([]*simnet.Node{victim}, tableHealthy)
				if v.untilAll(time.Minute); len(v.first) == 0 {
					t.Fatal("restored node not healthy within a minute")
				}
			})
		})
	}
}

// Bootstrap nodes limited to 1 new connection per second refuse some of 11
// nodes starting at once.
func TestBootAcceptRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := simnet.New(simnet.Config{Nodes: 15, Seed: 3, BootAcceptRate: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		time.Sleep(5 * time.Second)
		var refused int64
		for _, nd := range net.Nodes[:3] {
			refused += nd.Refused()
			if p := nd.PeakInboundPerSecond(); p > 2 {
				t.Errorf("bootstrap node %d accepted %d connections in one second, limit 1/s (burst 1)", nd.Index, p)
			}
			if a, p := nd.PeakAttemptsPerSecond(), nd.PeakInboundPerSecond(); a <= p {
				t.Errorf("bootstrap node %d: peak attempts %d per second, not above peak accepted %d", nd.Index, a, p)
			}
		}
		if refused == 0 {
			t.Error("no connection refused at 1/s while 12 nodes start")
		}
	})
}

// TestBootstrapScale: N nodes (default defaultNodes) join over
// RESILIENCE_SIM_JOIN seconds (default 60; 0: all at once) and bootstrap
// from 3 bootstrap nodes; then the network idles (RESILIENCE_SIM_IDLE
// seconds, default 120) to measure wall time per simulated minute.
//
//	RESILIENCE_LONG=1 go test -run TestBootstrapScale -v -timeout 120m ./internal/simnet/
func TestBootstrapScale(t *testing.T) {
	long(t)
	n, s, join := nodes(t, defaultNodes), seed(t), joinOver(t)
	idle := time.Duration(envInt(t, "RESILIENCE_SIM_IDLE", 120, 0)) * time.Second
	t.Logf("%d nodes joining over %v, seed %d (replay: RESILIENCE_SEED=%d)", n, join, s, s)
	before := memNow()
	wall := wallNow()
	var (
		report []string
		counts []int
	)
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		net, w := joinWatched(t, simnet.Config{Nodes: n, Seed: s, JoinOver: join}, isHealthy)
		d := w.times()
		startWall, startVirtual := wallNow()-wall, time.Since(t0)
		mean, most := dialStats(net.Nodes)
		peak := 0
		for _, nd := range net.Nodes[:3] {
			peak = max(peak, nd.PeakAttemptsPerSecond())
		}
		conns := connStats(net.Nodes)
		m := memNow()
		if d[len(d)-1] == never {
			t.Errorf("not every node healthy within 10 minutes of its start: %s", pct(d, 50, 90, 99, 100))
		}
		iw := wallNow()
		w.sleep(idle)
		idleWall := wallNow() - iw
		writeHeapProfile(t)
		idleMean, _ := dialStats(net.Nodes)
		counts = w.counts
		report = append(report,
			fmt.Sprintf("| healthy (monitor's verdict), from each node's start: 50 / 90 / 99 / 100 %% | %s |", pct(d, 50, 90, 99, 100)),
			fmt.Sprintf("| outbound dials per node (swarm dials to a peer not connected) until all healthy | mean %.1f, max %d |", mean, most),
			fmt.Sprintf("| peak inbound dial rate at a bootstrap node (connection attempts in one second) | %d |", peak),
			fmt.Sprintf("| connections per node when all are healthy; after idling | %s; %s |", conns, connStats(net.Nodes)),
			fmt.Sprintf("| memory per node, all healthy: Go heap + goroutine stacks; process RSS | %.1f + %.1f MiB; %.1f MiB |",
				(m.heap-before.heap)/float64(n), (m.stacks-before.stacks)/float64(n), (m.rss-before.rss)/float64(n)),
			fmt.Sprintf("| goroutines per node | %d |", runtime.NumGoroutine()/n),
			fmt.Sprintf("| wall time from the first start until all healthy | %v for %v virtual |", startWall.Round(time.Second), startVirtual.Round(time.Second)),
			fmt.Sprintf("| wall time per simulated minute, idle network (%v) | %.1f s |", idle, idleWall.Seconds()/max(idle.Minutes(), 1.0/60)),
			fmt.Sprintf("| outbound dials per node while idling | %.1f |", idleMean-mean),
		)
	})
	report = append(report, fmt.Sprintf("| process peak RSS | %.0f MiB |", memNow().peakRSS))
	t.Logf("\n%d nodes join over %v, 3 bootstrap nodes, seed %d\n| | |\n|---|---|\n%s", n, join, s, strings.Join(report, "\n"))
	writePlot(t, fmt.Sprintf("simnet-bootstrap-%d-%d", n, s), fmt.Sprintf("%d nodes join over %v, 3 bootstrap nodes", n, join), n,
		[]simnet.Series{{Label: "this module", Values: counts}})
}

// joinWatched builds the network (closed when the bubble's test ends) and
// samples health every second until every node has started and been
// healthy, or until 10 minutes after the join window. Call it inside
// synctest.Test.
func joinWatched(t *testing.T, cfg simnet.Config, healthy func(*simnet.Node) bool) (*simnet.Network, *watch) {
	t.Helper()
	net, err := simnet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Close)
	w := newWatch(net.Nodes, healthy)
	w.progress = t.Logf
	w.untilAll(cfg.JoinOver + 10*time.Minute)
	if err := net.Joined(); err != nil {
		t.Fatal(err)
	}
	return net, w
}

// connStats formats the mean and the largest number of open connections of set.
func connStats(set []*simnet.Node) string {
	sum, most := 0, 0
	for _, nd := range set {
		c := nd.Conns()
		sum += c
		most = max(most, c)
	}
	return fmt.Sprintf("mean %.1f, max %d", float64(sum)/float64(len(set)), most)
}

// TestCutOff: 30 % of the nodes (bootstrap nodes spared) lose their network
// for 60 s, then get it back: how long until each is healthy again, and how
// many dials that cost, with this module and with kad-dht alone, side by side
// on the same seed. Health here is the monitor's measure taken directly
// (connected routing-table peers ≥ 4), the same for both stacks.
//
//	RESILIENCE_LONG=1 go test -run TestCutOff -v -timeout 120m ./internal/simnet/
func TestCutOff(t *testing.T) {
	long(t)
	n, s, join := nodes(t, defaultNodes), seed(t), joinOver(t)
	t.Logf("%d nodes joining over %v, seed %d (replay: RESILIENCE_SEED=%d)", n, join, s, s)
	const outage, recoveryWait = 60 * time.Second, 15 * time.Minute
	var rows []string
	var series []simnet.Series
	for _, kadOnly := range []bool{false, true} {
		name := "this module (resilientdht.New)"
		if kadOnly {
			name = "kad-dht alone"
		}
		wall := time.Now()
		var virtual time.Duration
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			net, all := joinWatched(t, simnet.Config{Nodes: n, Seed: s, KadOnly: kadOnly, JoinOver: join}, tableHealthy)
			if len(all.first) < n {
				t.Fatalf("%s: not every node healthy before the outage: %s", name, pct(all.times(), 50, 90, 100))
			}
			time.Sleep(30 * time.Second) // settle
			var victims, others []*simnet.Node
			for _, i := range net.Rand.Perm(n - 3)[:n*3/10] {
				victims = append(victims, net.Nodes[3+i])
			}
			for _, nd := range net.Nodes {
				if !slices.Contains(victims, nd) {
					others = append(others, nd)
				}
			}
			d0, _ := dialStats(victims)
			w := newWatch(victims, tableHealthy)
			net.Cut(victims...)
			w.sleep(outage)
			down := len(victims) - w.counts[len(w.counts)-1]
			net.Restore(victims...)
			w.restart()
			w.untilAll(recoveryWait)
			d := w.times()
			d1, _ := dialStats(victims)
			unhealthy := 0
			for _, nd := range others {
				if !nd.TableHealthy() {
					unhealthy++
				}
			}
			virtual = time.Since(t0)
			rows = append(rows, fmt.Sprintf("| %s | %d of %d | %s | %.1f | %d |",
				name, down, len(victims), pct(d, 50, 90, 99, 100), d1-d0, unhealthy))
			series = append(series, simnet.Series{Label: name, Values: w.counts})
		})
		w := time.Since(wall)
		t.Logf("%s: %v virtual in %v wall", name, virtual.Round(time.Second), w.Round(time.Second))
	}
	t.Logf("\n%d nodes, 30 %% cut off for %v (packets lost, QUIC times out), seed %d\n| stack | victims unhealthy at the end of the outage | victims healthy again after the network returned: 50 / 90 / 99 / 100 %% (never: not within %v) | dials per victim (outage + recovery) | other nodes unhealthy at the end |\n|---|---|---|---|---|\n%s",
		n, outage, s, recoveryWait, strings.Join(rows, "\n"))
	writePlot(t, fmt.Sprintf("simnet-cutoff-%d-%d", n, s), fmt.Sprintf("%d nodes, 30 %% cut off 60 s from 0 s", n), n*3/10, series)
	t.Logf("process peak RSS: %.0f MiB", memNow().peakRSS)
}

// TestBootstrapHerd: every node starts (a whole-fleet restart, the nodes
// joining over RESILIENCE_SIM_JOIN seconds, default and at most 60) while the 3
// bootstrap nodes are down; they come back after 60 s and each accepts at
// most K new connections per second, refusing the rest before the handshake.
// For each jitter strategy of the ForDHTBootstrap profile: the drain time
// (until every node is healthy, from the bootstrap nodes' return) and the
// refused connections. RESILIENCE_SIM_SEEDS=m repeats it for m seeds from
// the printed one and sums up; RESILIENCE_SIM_JITTER=full,decorrelated
// runs only those strategies.
//
//	RESILIENCE_LONG=1 go test -run TestBootstrapHerd -v -timeout 240m ./internal/simnet/
func TestBootstrapHerd(t *testing.T) {
	long(t)
	const down = 60 * time.Second
	n, s, join := nodes(t, defaultNodes), seed(t), min(joinOver(t), down) // every node starts while the bootstrap nodes are down
	seeds := envInt(t, "RESILIENCE_SIM_SEEDS", 1, 1)
	k := envInt(t, "RESILIENCE_SIM_ACCEPT_RATE", max(5, n/20), 1) // per bootstrap node, connections per second
	t.Logf("%d nodes joining over %v, bootstrap nodes accept %d new connections/s, seeds %d..%d (replay: RESILIENCE_SEED=%d RESILIENCE_SIM_SEEDS=%d)", n, join, k, s, s+uint64(seeds)-1, s, seeds)
	strategies := []resilience.JitterStrategy{resilience.JitterProportional, resilience.JitterFull, resilience.JitterEqual, resilience.JitterDecorrelated}
	if v := os.Getenv("RESILIENCE_SIM_JITTER"); v != "" {
		strategies = nil
		for _, name := range strings.Split(v, ",") {
			j, err := resilience.ParseJitterStrategy(name)
			if err != nil {
				t.Fatalf("RESILIENCE_SIM_JITTER: %v", err)
			}
			strategies = append(strategies, j)
		}
	}
	type sum struct {
		drain, ratio   float64 // seconds; drain over the seed's best
		refused, dials float64
		never          int
	}
	sums := make([]sum, len(strategies))
	for seed := s; seed < s+uint64(seeds); seed++ {
		drains := make([]time.Duration, len(strategies))
		var rows []string
		var series []simnet.Series
		for i, j := range strategies {
			cfg := resilience.ForDHTBootstrap()
			cfg.Jitter = j
			wall := time.Now()
			synctest.Test(t, func(t *testing.T) {
				net, err := simnet.New(simnet.Config{Nodes: n, Seed: seed, BootstrapRetry: &cfg, BootAcceptRate: float64(k), JoinOver: join})
				if err != nil {
					t.Fatal(err)
				}
				defer net.Close()
				boot := net.Nodes[:3]
				net.Cut(boot...) // before any other node starts
				time.Sleep(down)
				net.Restore(boot...)
				w := newWatch(net.Nodes, isHealthy)
				w.progress = t.Logf
				w.untilAll(15 * time.Minute)
				if err := net.Joined(); err != nil {
					t.Fatal(err)
				}
				d := w.times()
				var refused int64
				peak, peakAttempts := 0, 0
				for _, nd := range boot {
					refused += nd.Refused()
					peak = max(peak, nd.PeakInboundPerSecond())
					peakAttempts = max(peakAttempts, nd.PeakAttemptsPerSecond())
				}
				mean, _ := dialStats(net.Nodes)
				drains[i] = d[len(d)-1]
				sums[i].refused += float64(refused) / float64(seeds)
				sums[i].dials += mean / float64(seeds)
				rows = append(rows, fmt.Sprintf("| %s | %s | %d | %.1f | %d / %d |", j, pct(d, 50, 90, 99, 100), refused, mean, peakAttempts, peak))
				series = append(series, simnet.Series{Label: j.String(), Values: w.counts})
			})
			t.Logf("seed %d, %s: %s; %v wall", seed, j, rows[len(rows)-1], time.Since(wall).Round(time.Second))
		}
		best := slices.Min(drains)
		for i, d := range drains {
			if d == never {
				sums[i].never++
				continue
			}
			sums[i].drain += d.Seconds() / float64(seeds)
			sums[i].ratio += d.Seconds() / best.Seconds() / float64(seeds)
		}
		t.Logf("\n%d nodes start (joining over %v) while the 3 bootstrap nodes are down for %v; then each accepts %d new connections/s; seed %d\n| jitter (ForDHTBootstrap) | healthy after the bootstrap nodes' return: 50 / 90 / 99 / 100 %% (drain) | connections refused (before the handshake) | dials per node | peak per second at a bootstrap node: attempts / accepted |\n|---|---|---|---|---|\n%s",
			n, join, down, k, seed, strings.Join(rows, "\n"))
		writePlot(t, fmt.Sprintf("simnet-herd-%d-%d", n, seed), fmt.Sprintf("%d nodes, bootstrap nodes back at 0 s, %d conn/s each", n, k), n, series)
	}
	var rows []string
	for i, j := range strategies {
		x := sums[i]
		rows = append(rows, fmt.Sprintf("| %s | %.1f s | %.2f | %.0f | %.1f | %d |", j, x.drain, x.ratio, x.refused, x.dials, x.never))
	}
	t.Logf("\nsummary over %d seeds from %d: %d nodes, bootstrap nodes down %v, then %d new connections/s each\n| jitter (ForDHTBootstrap) | mean drain | mean drain / the seed's best | mean refused | mean dials per node | runs not drained in 15 min |\n|---|---|---|---|---|---|\n%s",
		seeds, s, n, down, k, strings.Join(rows, "\n"))
	t.Logf("process peak RSS: %.0f MiB", memNow().peakRSS)
	// The default must drain within 1.1x of the best strategy.
	def := resilientdht.DefaultBootstrapRetry().Jitter
	if i := slices.Index(strategies, def); i >= 0 {
		if x := sums[i]; x.never > 0 || x.ratio > 1.1 {
			t.Errorf("the default bootstrap jitter (%s) drained %.2fx as slowly as the best, on average (%d runs never): want within 1.1x", def, x.ratio, x.never)
		} else {
			t.Logf("the default bootstrap jitter (%s): %.2fx the best, within 1.1x", def, x.ratio)
		}
	}
}

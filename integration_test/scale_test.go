package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The scale scenario's shape. RESILIENCE_SCALE_NODES changes the node count
// (for a quick try of the harness); a fifth of the nodes are killed.
const (
	scaleNodes     = 200
	scaleBootNodes = 3
	scaleMinPeers  = 4
	// scaleSettle is how long the network idles after all nodes are healthy
	// before memory, fds and CPU are sampled; scaleCPUWindow is the CPU sample.
	scaleSettle    = 30 * time.Second
	scaleCPUWindow = 60 * time.Second
	// scaleWatch is how long the survivors are watched after the kill.
	scaleWatch = 60 * time.Second
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
	// (100 on every Linux architecture Go supports).
	clockTicks = 100
)

// scaleNode is one resilient-dht process of the scale scenario.
type scaleNode struct {
	runNode
	boot    bool
	healthy time.Time // first /healthz 200 since the node was (re)started
}

// TestScaleProcesses runs resilient-dht as 200 real processes on 127.0.0.1 (3
// bootstrap nodes, everyone given the 3 of them), waits until every node's
// /healthz answers 200, samples memory, fds and idle CPU per process, SIGKILLs
// 40 nodes (one of them a bootstrap node), watches the 160 others, restarts the
// 40 with their identity, data directory and ports, and waits until all 200 are
// healthy again. It prints a table of what it measured; it fails if a node
// never becomes healthy or a survivor does not stay or become healthy again.
//
//	RESILIENCE_LONG=1 go test -run TestScaleProcesses -v -timeout 60m ./integration_test/
func TestScaleProcesses(t *testing.T) {
	long(t)
	n := scaleNodes
	if v := os.Getenv("RESILIENCE_SCALE_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2*scaleBootNodes {
			t.Fatalf("RESILIENCE_SCALE_NODES=%q: want an integer of at least %d", v, 2*scaleBootNodes)
		}
	}
	nKill := n / 5
	seed := testSeed(t)
	t.Logf("%d nodes, %d killed; seed %d (replay: RESILIENCE_SEED=%d)", n, nKill, seed, seed)
	rng := rand.New(rand.NewPCG(2, seed))

	dir := t.TempDir()
	ports := uniquePorts(t, 2*n)
	nodes := make([]*scaleNode, n)
	var bootArgs []string
	for i := range nodes {
		nd := &scaleNode{boot: i < scaleBootNodes}
		nd.key = filepath.Join(dir, fmt.Sprintf("key-%d", i))
		nd.dir = filepath.Join(dir, fmt.Sprintf("data-%d", i))
		nd.port, nd.http = ports[2*i], fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
		if nd.boot { // the others create their key on first start
			nd.id = keygen(t, nd.key)
			bootArgs = append(bootArgs, "--bootstrap", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", nd.port, nd.id))
		}
		nodes[i] = nd
	}
	args := func(nd *scaleNode) []string {
		// The fleet's settings (deploy/k8s): a server on the LAN DHT, which
		// keeps private and loopback addresses.
		a := []string{"run", "--identity", nd.key, "--data-dir", nd.dir,
			"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", nd.port), "--http", nd.http,
			"--min-peers", strconv.Itoa(scaleMinPeers), "--mode", "server", "--dht", "lan", "--log-level", "warn"}
		return append(a, bootArgs...)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxIdleConns: 2 * n}}
	t.Cleanup(client.CloseIdleConnections)

	// Start: bootstrap nodes first, then everyone at once, as a fleet does.
	t0 := time.Now()
	for _, nd := range nodes {
		nd.proc = start(t, args(nd)...)
	}
	startup := waitScaleHealthy(t, client, nodes, t0, 15*time.Minute)

	t.Logf("all %d healthy; idling %v, then sampling for %v", n, scaleSettle, scaleCPUWindow)
	time.Sleep(scaleSettle)
	idle := sampleProcs(t, nodes, scaleCPUWindow)
	conns, table, bootConns := statusNumbers(t, client, nodes)

	// Kill a fifth, one bootstrap node among them.
	victims := []int{rng.IntN(scaleBootNodes)}
	for _, i := range rng.Perm(n - scaleBootNodes)[:nKill-1] {
		victims = append(victims, scaleBootNodes+i)
	}
	slices.Sort(victims)
	killed := map[int]bool{}
	for _, i := range victims {
		nodes[i].proc.kill(t)
		killed[i] = true
	}
	tKill := time.Now()
	t.Logf("SIGKILLed %d nodes: %v", len(victims), victims)
	var survivors []*scaleNode
	for i, nd := range nodes {
		if !killed[i] {
			survivors = append(survivors, nd)
		}
	}
	// Watch the survivors for scaleWatch, and on until all answer 200: which of
	// them ever answer anything else, and when the last of them did.
	lastBad := map[*scaleNode]time.Time{}
	for {
		codes, now, sick := pollAll(client, survivors), time.Now(), 0
		for nd, code := range codes {
			if code != http.StatusOK {
				lastBad[nd], sick = now, sick+1
			}
		}
		if sick == 0 && now.Sub(tKill) >= scaleWatch {
			break
		}
		if now.Sub(tKill) > 5*time.Minute {
			t.Fatalf("%d of %d survivors still not healthy 5m after the kill", sick, len(survivors))
		}
		time.Sleep(500 * time.Millisecond)
	}
	survivorsNote := fmt.Sprintf("all %d stayed healthy", len(survivors))
	if len(lastBad) > 0 {
		var last time.Time
		for _, at := range lastBad {
			if at.After(last) {
				last = at
			}
		}
		survivorsNote = fmt.Sprintf("%d of %d answered non-200 at some poll; the last of them %v after the kill",
			len(lastBad), len(survivors), last.Sub(tKill).Round(100*time.Millisecond))
	}

	// Restart the killed nodes with the same identity, data dir and ports.
	tRestart := time.Now()
	var restarted []*scaleNode
	for _, i := range victims {
		nd := nodes[i]
		nd.healthy = time.Time{}
		nd.proc = start(t, args(nd)...)
		restarted = append(restarted, nd)
	}
	rejoin := waitScaleHealthy(t, client, nodes, tRestart, 10*time.Minute)
	var rejoinRestarted []time.Duration
	for _, nd := range restarted {
		rejoinRestarted = append(rejoinRestarted, nd.healthy.Sub(tRestart))
	}
	slices.Sort(rejoinRestarted)
	after := sampleProcs(t, nodes, 0)

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d resilient-dht processes on 127.0.0.1 (%d bootstrap, --min-peers %d, --dht lan, --mode server, TCP only), %d CPUs\n",
		n, scaleBootNodes, scaleMinPeers, runtime.NumCPU())
	fmt.Fprintf(&b, "| phase | time to healthy: 50 %% / 90 %% / all |\n|---|---|\n")
	fmt.Fprintf(&b, "| start, all %d at once | %s |\n", n, percentiles(startup))
	fmt.Fprintf(&b, "| %d SIGKILLed (1 bootstrap): the %d survivors, polled every 0.5 s | %s |\n", nKill, len(survivors), survivorsNote)
	fmt.Fprintf(&b, "| restart of the %d (same key, data dir, port) | restarted nodes %s; whole network all healthy %s |\n",
		nKill, percentiles(rejoinRestarted), rejoin[len(rejoin)-1].Round(100*time.Millisecond))
	fmt.Fprintf(&b, "\nper process | median | p90 | max | sum\n")
	fmt.Fprintf(&b, "RSS idle (MiB) | %s\n", stats(idle.rssMiB, "%.1f"))
	fmt.Fprintf(&b, "fds idle | %s\n", stats(idle.fds, "%.0f"))
	fmt.Fprintf(&b, "CPU idle over %v (%% of one core) | %s\n", scaleCPUWindow, stats(idle.cpuPct, "%.2f"))
	fmt.Fprintf(&b, "connections idle | %s\n", stats(conns, "%.0f"))
	fmt.Fprintf(&b, "routing-table peers idle | %s\n", stats(table, "%.0f"))
	fmt.Fprintf(&b, "connections of a bootstrap node idle | %s\n", stats(bootConns, "%.0f"))
	fmt.Fprintf(&b, "RSS after the restart (MiB) | %s\n", stats(after.rssMiB, "%.1f"))
	fmt.Fprintf(&b, "fds after the restart | %s\n", stats(after.fds, "%.0f"))
	t.Log(b.String())
}

// uniquePorts returns k distinct free TCP ports on 127.0.0.1.
func uniquePorts(t *testing.T, k int) []int {
	t.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < k {
		if p := freePort(t); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// pollAll asks every node's /healthz, 16 at a time; 0 means no answer.
func pollAll(c *http.Client, nodes []*scaleNode) map[*scaleNode]int {
	out := make(map[*scaleNode]int, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, nd := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code := 0
			if resp, err := c.Get("http://" + nd.http + "/healthz"); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			out[nd] = code
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// waitScaleHealthy polls until every node has answered /healthz 200 once
// (recording when in nd.healthy) and answers 200 now. It returns each node's
// time to its first 200 since t0, sorted.
func waitScaleHealthy(t *testing.T, c *http.Client, nodes []*scaleNode, t0 time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	lastLog := time.Now()
	for {
		codes := pollAll(c, nodes)
		now, sick := time.Now(), 0
		for _, nd := range nodes {
			if codes[nd] == http.StatusOK {
				if nd.healthy.IsZero() {
					nd.healthy = now
				}
			} else {
				sick++
			}
		}
		if sick == 0 {
			break
		}
		if now.Sub(t0) > timeout {
			var b strings.Builder
			shown := 0
			for i, nd := range nodes {
				if codes[nd] != http.StatusOK && shown < 3 {
					shown++
					fmt.Fprintf(&b, "--- node %d (%s) → %d ---\n%s\n", i, nd.http, codes[nd], nd.proc.output())
				}
			}
			t.Fatalf("%d of %d nodes not healthy %v after start; the first few:\n%s", sick, len(nodes), timeout, b.String())
		}
		if time.Since(lastLog) > 30*time.Second {
			t.Logf("%v: %d of %d nodes not healthy yet", now.Sub(t0).Round(time.Second), sick, len(nodes))
			lastLog = time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
	var out []time.Duration
	for _, nd := range nodes {
		out = append(out, nd.healthy.Sub(t0))
	}
	slices.Sort(out)
	return out
}

// procSample is memory, fds and CPU of every node's process.
type procSample struct {
	rssMiB, fds, cpuPct []float64
}

// sampleProcs reads /proc for every node: RSS and open fds now, and with a
// window, the CPU each process used during it in % of one core.
func sampleProcs(t *testing.T, nodes []*scaleNode, window time.Duration) procSample {
	t.Helper()
	var s procSample
	before := make([]float64, len(nodes))
	for i, nd := range nodes {
		before[i] = cpuSeconds(t, nd.proc.cmd.Process.Pid)
	}
	if window > 0 {
		time.Sleep(window)
		for i, nd := range nodes {
			used := cpuSeconds(t, nd.proc.cmd.Process.Pid) - before[i]
			s.cpuPct = append(s.cpuPct, 100*used/window.Seconds())
		}
	}
	for _, nd := range nodes {
		pid := nd.proc.cmd.Process.Pid
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatalf("node %s: %v", nd.http, err)
		}
		var kib float64
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kib, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		if kib == 0 {
			t.Fatalf("node %s: no VmRSS in /proc/%d/status", nd.http, pid)
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatalf("node %s: %v", nd.http, err)
		}
		s.rssMiB = append(s.rssMiB, kib/1024)
		s.fds = append(s.fds, float64(len(fds)))
	}
	return s
}

// statusNumbers reads every node's /status: its connection count and its
// routing-table size, and the connection counts of the bootstrap nodes.
func statusNumbers(t *testing.T, c *http.Client, nodes []*scaleNode) (conns, table, bootConns []float64) {
	t.Helper()
	for _, nd := range nodes {
		resp, err := c.Get("http://" + nd.http + "/status")
		if err != nil {
			t.Fatalf("node %s /status: %v", nd.http, err)
		}
		var doc struct {
			Connections   int            `json:"connections"`
			RoutingTables map[string]int `json:"routing_tables"`
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("node %s /status: %v", nd.http, err)
		}
		conns = append(conns, float64(doc.Connections))
		table = append(table, float64(doc.RoutingTables["lan"]))
		if nd.boot {
			bootConns = append(bootConns, float64(doc.Connections))
		}
	}
	return conns, table, bootConns
}

// cpuSeconds is the user + system CPU time of a process from /proc/<pid>/stat.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	rest := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	// rest[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseFloat(rest[11], 64)
	stime, err2 := strconv.ParseFloat(rest[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return (utime + stime) / clockTicks
}

func percentiles(d []time.Duration) string {
	at := func(p float64) time.Duration {
		return d[min(len(d)-1, int(p*float64(len(d)-1)+0.5))].Round(100 * time.Millisecond)
	}
	return fmt.Sprintf("%v / %v / %v", at(0.5), at(0.9), d[len(d)-1].Round(100*time.Millisecond))
}

func stats(v []float64, format string) string {
	s := slices.Clone(v)
	slices.Sort(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	at := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s)-1)+0.5))] }
	f := func(x float64) string { return fmt.Sprintf(format, x) }
	return strings.Join([]string{f(at(0.5)), f(at(0.9)), f(s[len(s)-1]), f(sum)}, " | ")
}

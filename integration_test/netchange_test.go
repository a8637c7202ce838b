//go:build linux

package integration_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// The network-change measurement: six resilient-dht nodes in the root network
// namespace and one victim in a namespace of its own, joined by a veth pair with
// test-private addresses (10.213.N.1-6/28 on the root side, one per node, and
// 10.213.N.14/28 on the victim's). The test cuts the victim's network in four
// ways, several times each, and measures from the victim's /healthz:
//
//	noticed: from the cut until /healthz stops answering 200
//	healed:  from the network's return until /healthz answers 200 again
//
// Run it with
//
//	RESILIENCE_LONG=1 go test -v -run TestNetworkChangeTable -timeout 30m ./integration_test/
//
// It needs root (network namespaces, veth, tc) and the ip and tc commands; it skips
// with a message saying so otherwise. Outages are shortened from the 60 s
// (link 45 s, address and loss 30 s) to keep the run near fifteen minutes; the
// muxer's ~30 s keep-alive, which noticed the outages before netwatch, still
// shows within them.
//
// RESILIENCE_NETCHANGE_REPS sets the repetitions per case (default 5);
// RESILIENCE_NETCHANGE_SHARED_IP=1 puts every root node on one IP;
// RESILIENCE_NETCHANGE_VICTIM_LOG=file saves the victim's output (log level info).

const (
	netchangeNodes   = 6 // root-namespace nodes
	netchangeMinPeer = 4 // --min-peers of every node
	pollEvery        = 50 * time.Millisecond
	healLimit        = 90 * time.Second // longest wait for /healthz 200 after the network returns
	// settle is how long the victim is healthy before the next cut: longer than the
	// monitor's minimum dwell (healthmon.DefaultMinDwell, 5 s), which holds back a
	// reversal of the reported status; a shorter one would measure the dwell.
	settle = 8 * time.Second
)

// netCase is one way of cutting the victim off and bringing it back.
type netCase struct {
	name    string
	outage  time.Duration
	cut     func(t *testing.T, l *netLab)
	restore func(t *testing.T, l *netLab)
}

func netCases() []netCase {
	linkDown := func(t *testing.T, l *netLab) { l.ipNS(t, "link", "set", l.victimIf, "down") }
	linkUp := func(t *testing.T, l *netLab) { l.ipNS(t, "link", "set", l.victimIf, "up") }
	return []netCase{
		{"link down 20 s, then up", 20 * time.Second, linkDown, linkUp},
		{"link down 45 s, then up", 45 * time.Second, linkDown, linkUp},
		{"address deleted 30 s, then re-added", 30 * time.Second,
			func(t *testing.T, l *netLab) { l.ipNS(t, "addr", "del", l.victimAddr.String(), "dev", l.victimIf) },
			func(t *testing.T, l *netLab) { l.ipNS(t, "addr", "add", l.victimAddr.String(), "dev", l.victimIf) }},
		{"100 % packet loss 30 s (no kernel signal)", 30 * time.Second,
			func(t *testing.T, l *netLab) {
				// This kernel has no netem: a pfifo queue of length 0 drops every packet.
				l.cmd(t, "tc", "qdisc", "add", "dev", l.rootIf, "root", "pfifo", "limit", "0")
				l.cmd(t, "ip", "netns", "exec", l.ns, "tc", "qdisc", "add", "dev", l.victimIf, "root", "pfifo", "limit", "0")
			},
			func(t *testing.T, l *netLab) {
				l.cmd(t, "tc", "qdisc", "del", "dev", l.rootIf, "root")
				l.cmd(t, "ip", "netns", "exec", l.ns, "tc", "qdisc", "del", "dev", l.victimIf, "root")
			}},
	}
}

// TestNetworkChangeTable measures how fast the victim notices a network change
// and how fast it is healthy again, and prints the table of the README's "When
// the network changes" section. It asserts only that the victim becomes healthy
// after every repetition; the figures are measurements, not assertions.
func TestNetworkChangeTable(t *testing.T) {
	long(t)
	reps := 5
	if s := os.Getenv("RESILIENCE_NETCHANGE_REPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("RESILIENCE_NETCHANGE_REPS=%q: want a positive integer", s)
		}
		reps = n
	}
	lab := newNetLab(t)
	dir := t.TempDir()

	nodes := make([]*runNode, netchangeNodes)
	for i := range nodes {
		n := &runNode{key: filepath.Join(dir, fmt.Sprint("key", i)), dir: filepath.Join(dir, fmt.Sprint("data", i)), port: freePort(t)}
		n.id = keygen(t, n.key)
		n.http = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		nodes[i] = n
	}
	// RESILIENCE_NETCHANGE_SHARED_IP=1 puts every root node on the first address
	// (several nodes behind one IP, as behind a NAT): go-libp2p's per-IP
	// connection rate limit then applies to the victim's dials to all of them.
	rootIP := func(i int) netip.Addr { return lab.rootAddrs[i].Addr() }
	if os.Getenv("RESILIENCE_NETCHANGE_SHARED_IP") == "1" {
		rootIP = func(int) netip.Addr { return lab.rootAddrs[0].Addr() }
		t.Log("every root node on one IP (RESILIENCE_NETCHANGE_SHARED_IP=1)")
	}
	var bootstrap []string
	for i, n := range nodes {
		bootstrap = append(bootstrap, "--bootstrap", fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", rootIP(i), n.port, n.id))
	}
	var addrs []string
	var procs []*proc
	for i, n := range nodes {
		args := []string{"run", "--identity", n.key, "--data-dir", n.dir, "--mode", "server",
			"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", rootIP(i), n.port),
			"--http", n.http, "--min-peers", strconv.Itoa(netchangeMinPeer), "--log-level", "warn"}
		for i := 0; i < len(bootstrap); i += 2 {
			if !strings.HasSuffix(bootstrap[i+1], n.id) {
				args = append(args, bootstrap[i], bootstrap[i+1])
			}
		}
		n.proc = start(t, args...)
		addrs, procs = append(addrs, n.http), append(procs, n.proc)
	}
	waitHealthz(t, 2*time.Minute, http.StatusOK, procs, addrs...)

	// The victim: its own namespace, its HTTP endpoint on that namespace's loopback.
	vkey := filepath.Join(dir, "victim.key")
	keygen(t, vkey)
	vport := freePort(t) // free in the root namespace; the victim's namespace has no listeners at all
	victimArgs := append([]string{"netns", "exec", lab.ns, binary, "run", "--identity", vkey,
		"--data-dir", filepath.Join(dir, "victim-data"), "--mode", "server",
		"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", lab.victimAddr.Addr(), vport),
		"--http", "127.0.0.1:9464", "--min-peers", strconv.Itoa(netchangeMinPeer), "--log-level", "info"}, bootstrap...)
	victim := startCmd(t, "ip", victimArgs...)
	if path := os.Getenv("RESILIENCE_NETCHANGE_VICTIM_LOG"); path != "" {
		t.Cleanup(func() { // runs before the victim is killed: cleanups run last first
			if err := os.WriteFile(path, []byte(victim.output()), 0o600); err != nil {
				t.Errorf("RESILIENCE_NETCHANGE_VICTIM_LOG: %v", err)
			}
		})
	}
	hz := lab.healthz("127.0.0.1:9464")
	waitFor(t, 2*time.Minute, "the victim to become healthy", victim, func() bool { return hz() == http.StatusOK })

	type row struct {
		name    string
		noticed []time.Duration // -1: not noticed during the outage
		healed  []time.Duration // -1: not healthy within healLimit; notApplicable: healthy when the network returned
	}
	var rows []row
	for _, c := range netCases() {
		r := row{name: c.name}
		for rep := range reps {
			waitFor(t, healLimit, "the victim to be healthy before the cut", victim, func() bool { return hz() == http.StatusOK })
			time.Sleep(settle)
			if hz() != http.StatusOK {
				waitFor(t, healLimit, "the victim to be healthy before the cut", victim, func() bool { return hz() == http.StatusOK })
			}

			cutAt := time.Now()
			c.cut(t, lab)
			victim.mark(fmt.Sprintf("TEST: %s #%d: cut at %s", c.name, rep+1, cutAt.Format(time.RFC3339Nano)))
			noticed := time.Duration(-1)
			for time.Since(cutAt) < c.outage {
				if hz() != http.StatusOK {
					noticed = time.Since(cutAt)
					break
				}
				time.Sleep(pollEvery)
			}
			time.Sleep(time.Until(cutAt.Add(c.outage)))

			// A victim still (or again) healthy when the network returns has nothing to heal.
			wasHealthy := hz() == http.StatusOK
			backAt := time.Now()
			c.restore(t, lab)
			victim.mark(fmt.Sprintf("TEST: %s #%d: back at %s", c.name, rep+1, backAt.Format(time.RFC3339Nano)))
			healed := time.Duration(-1)
			for !wasHealthy && time.Since(backAt) < healLimit {
				if hz() == http.StatusOK {
					healed = time.Since(backAt)
					break
				}
				time.Sleep(pollEvery)
			}
			if wasHealthy {
				healed = notApplicable
			}
			t.Logf("%s #%d: noticed %s, healthy %s after the network returned", c.name, rep+1, fmtDur(noticed), fmtDur(healed))
			if healed == -1 {
				t.Errorf("%s #%d: victim not healthy within %v after the network returned\n--- victim output ---\n%s",
					c.name, rep+1, healLimit, tail(victim.output(), 60))
				waitFor(t, 3*time.Minute, "the victim to be healthy at all", victim, func() bool { return hz() == http.StatusOK })
			}
			r.noticed, r.healed = append(r.noticed, noticed), append(r.healed, healed)
		}
		rows = append(rows, r)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%d repetitions each; %d root-namespace nodes, one victim in a network namespace behind a veth pair, --min-peers %d\n\n",
		reps, netchangeNodes, netchangeMinPeer)
	b.WriteString("| what happened to the victim's link | noticed (unhealthy) after | healthy after the network returned |\n")
	b.WriteString("|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.name, summarize(r.noticed, "never (healthy the whole outage)"), summarize(r.healed, "not within "+healLimit.String()))
	}
	t.Log(b.String())
}

// notApplicable marks a repetition without a figure: the victim was healthy when
// the network returned (it never noticed the outage).
const notApplicable = time.Duration(-2)

func fmtDur(d time.Duration) string {
	switch d {
	case -1:
		return "never"
	case notApplicable:
		return "– (was healthy)"
	}
	return d.Round(time.Millisecond).String()
}

// summarize renders "median 0.42 s (0.31–0.77)" over the measured values, and how
// many repetitions had none (-1: absent) or nothing to measure (notApplicable).
func summarize(ds []time.Duration, absent string) string {
	var got []time.Duration
	na := 0
	for _, d := range ds {
		switch {
		case d >= 0:
			got = append(got, d)
		case d == notApplicable:
			na++
		}
	}
	var notes []string
	if n := len(ds) - len(got) - na; n > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d: %s", n, len(ds), absent))
	}
	if na > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d: healthy when it returned", na, len(ds)))
	}
	if len(got) == 0 {
		if len(notes) == 0 {
			return "–"
		}
		return "– (" + strings.Join(notes, "; ") + ")"
	}
	slices.Sort(got)
	med := got[len(got)/2]
	if len(got)%2 == 0 {
		med = (got[len(got)/2-1] + got[len(got)/2]) / 2
	}
	sec := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }
	s := fmt.Sprintf("median %s s (%s–%s)", sec(med), sec(got[0]), sec(got[len(got)-1]))
	if len(notes) > 0 {
		s += "; " + strings.Join(notes, "; ")
	}
	return s
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// startCmd starts the command name (here: ip netns exec ... binary) with its
// output captured, like start does for the binary; t.Cleanup kills it.
func startCmd(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	out := &lockedWriter{mu: &p.mu, w: &p.out} // interop_jslibp2p_test.go
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// mark writes a line into p's captured output, to find the test's steps in it.
func (p *proc) mark(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.WriteString(line + "\n")
}

// waitFor polls cond until it holds, or fails the test after timeout showing p's output.
func waitFor(t *testing.T, timeout time.Duration, what string, p *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v\n--- output ---\n%s", what, timeout, tail(p.output(), 80))
		}
		time.Sleep(pollEvery)
	}
}

// netLab is a network namespace joined to the root namespace by a veth pair.
type netLab struct {
	ns               string         // namespace name
	rootIf, victimIf string         // veth ends: root namespace, victim namespace
	rootAddrs        []netip.Prefix // 10.213.N.1/28 ... 10.213.N.6/28, one per root node
	victimAddr       netip.Prefix   // 10.213.N.14/28
	nsh              netns.NsHandle
}

// newNetLab creates the namespace and the veth pair, and removes both (and with
// them the victim's routes) in t.Cleanup, also when the test fails. It skips the
// test when it cannot create them.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and a veth pair (ip netns add, ip link add type veth)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs the %q command (iproute2): %v", tool, err)
		}
	}
	tag := fmt.Sprintf("rnc%d", os.Getpid()%100000) // veth names must stay under 16 bytes
	l := &netLab{ns: tag, rootIf: tag + "r", victimIf: tag + "v"}
	l.rootAddrs, l.victimAddr = freeLabSubnet(t, netchangeNodes)

	if out, err := exec.Command("ip", "netns", "add", l.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (ip netns add): %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Deleting the namespace deletes the victim's veth end and with it the pair.
		if out, err := exec.Command("ip", "netns", "del", l.ns).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip netns del %s: %v: %s", l.ns, err, out)
		}
		// In case the pair was made but never moved, or the kernel is slow to drop it.
		_ = exec.Command("ip", "link", "del", l.rootIf).Run()
	})
	if out, err := exec.Command("ip", "link", "add", l.rootIf, "type", "veth", "peer", "name", l.victimIf, "netns", l.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a veth pair: %v: %s", err, out)
	}
	for _, a := range l.rootAddrs {
		l.cmd(t, "ip", "addr", "add", a.String(), "dev", l.rootIf)
	}
	l.cmd(t, "ip", "link", "set", l.rootIf, "up")
	l.ipNS(t, "addr", "add", l.victimAddr.String(), "dev", l.victimIf)
	l.ipNS(t, "link", "set", l.victimIf, "up")
	l.ipNS(t, "link", "set", "lo", "up")

	h, err := netns.GetFromName(l.ns)
	if err != nil {
		t.Fatalf("open namespace %s: %v", l.ns, err)
	}
	l.nsh = h
	t.Cleanup(func() { h.Close() })

	// Wait for the pair to pass traffic (veth carrier comes up asynchronously).
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("ip", "netns", "exec", l.ns, "ping", "-c", "1", "-W", "1", l.rootAddrs[0].Addr().String()).Run() != nil {
		if _, err := exec.LookPath("ping"); err != nil {
			time.Sleep(time.Second) // no ping: give the carrier a moment
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("veth pair %s <-> %s passes no traffic after 30 s", l.rootIf, l.victimIf)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("lab: namespace %s, %s %s <-> %s %s", l.ns, l.rootIf, l.rootAddrs, l.victimIf, l.victimAddr)
	return l
}

// freeLabSubnet picks 10.213.N.0/28 with N unused by every address of the root
// namespace, and returns n root addresses (.1, .2, ...) and the victim's (.14).
// Each root node has an address of its own, as bootstrap peers do: go-libp2p's
// resource manager limits connections per IP (0.2/s after a burst of 16, which
// the dialer mirrors), so peers sharing one IP would be reached 5 s apart once
// the probes of a long outage spent the burst. These addresses exist only on the
// veth pair this test creates.
func freeLabSubnet(t *testing.T, n int) (root []netip.Prefix, victim netip.Prefix) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	used := func(n int) bool {
		blk := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(n), 0}), 24)
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && blk.Overlaps(p) {
				return true
			}
		}
		return false
	}
	start := rand.IntN(250) + 1
	for i := range 250 {
		blk := (start+i)%250 + 1
		if used(blk) {
			continue
		}
		for h := 1; h <= n; h++ {
			root = append(root, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(blk), byte(h)}), 28))
		}
		return root, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(blk), 14}), 28)
	}
	t.Skip("no free 10.213.N.0/24 block for the test's veth pair")
	return
}

func (l *netLab) cmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// ipNS runs ip inside the victim's namespace.
func (l *netLab) ipNS(t *testing.T, args ...string) {
	t.Helper()
	l.cmd(t, "ip", append([]string{"-n", l.ns}, args...)...)
}

// healthz returns a function that fetches /healthz at addr inside the victim's
// namespace and returns the status code (0: no answer). A socket belongs to the
// namespace of the thread that creates it, so each connection is created on a
// short-lived thread moved into the namespace; the test's own threads never are.
func (l *netLab) healthz(addr string) func() int {
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			// Never unlocked: the thread, possibly left in the namespace, ends with the goroutine.
			runtime.LockOSThread()
			if err := netns.Set(l.nsh); err != nil {
				ch <- res{err: fmt.Errorf("enter namespace %s: %w", l.ns, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, address)
			ch <- res{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
	}
	return func() int {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
}

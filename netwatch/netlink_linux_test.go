//go:build linux

package netwatch

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
)

// netWaitLimit bounds every wait for the kernel or the watcher; generous for a slow, shared machine.
const netWaitLimit = 30 * time.Second

// vethNS is a fresh network namespace holding the veth pair nw0 <-> nw1. Nothing in it is
// connected to the host's network.
type vethNS struct {
	ns   netns.NsHandle
	h    *netlink.Handle // netlink handle bound to ns
	a, b netlink.Link    // nw0, nw1
}

// newVethNS creates the namespace on a thread of its own and moves that thread back; the
// namespace is deleted in t.Cleanup when its last handle is closed. It skips the test when
// the process may not create namespaces.
func newVethNS(t *testing.T) *vethNS {
	t.Helper()
	type result struct {
		ns  netns.NsHandle
		h   *netlink.Handle
		err error
	}
	resc := make(chan result, 1)
	go func() {
		// Locked for good unless the thread is back in its own namespace: a thread left in
		// the test namespace is retired with this goroutine instead of running other code.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			resc <- result{err: fmt.Errorf("get current namespace: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.New() // unshare(CLONE_NEWNET): this thread is now inside ns
		if err != nil {
			resc <- result{err: err}
			return
		}
		h, err := netlink.NewHandle() // sockets opened here belong to ns
		if err != nil {
			ns.Close()
			resc <- result{err: fmt.Errorf("netlink handle in new namespace: %w", err)}
			return
		}
		if err := netns.Set(orig); err != nil {
			h.Close()
			ns.Close()
			resc <- result{err: fmt.Errorf("restore original namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		resc <- result{ns: ns, h: h}
	}()
	r := <-resc
	if r.err != nil {
		t.Skipf("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to create a network namespace: %v", r.err)
	}
	tn := &vethNS{ns: r.ns, h: r.h}
	t.Cleanup(func() {
		tn.h.Close()
		tn.ns.Close() // last reference: the kernel deletes the namespace and its veth pair
	})

	la := netlink.NewLinkAttrs()
	la.Name = "nw0"
	if err := tn.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "nw1"}); err != nil {
		t.Skipf("needs CAP_NET_ADMIN and veth support to create a veth pair in the test namespace: %v", err)
	}
	tn.a = tn.link(t, "nw0")
	tn.b = tn.link(t, "nw1")
	return tn
}

func (tn *vethNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := tn.h.LinkByName(name)
	if err != nil {
		t.Fatalf("LinkByName(%s): %v", name, err)
	}
	return l
}

func (tn *vethNS) setUp(t *testing.T, l netlink.Link, up bool) {
	t.Helper()
	var err error
	if up {
		err = tn.h.LinkSetUp(l)
	} else {
		err = tn.h.LinkSetDown(l)
	}
	if err != nil {
		t.Fatalf("set %s up=%v: %v", l.Attrs().Name, up, err)
	}
}

// waitRunning polls the kernel until link name is up and running (or not).
func (tn *vethNS) waitRunning(t *testing.T, name string, running bool) {
	t.Helper()
	deadline := time.Now().Add(netWaitLimit)
	for l := tn.link(t, name); linkStateOf(l.Attrs()).up != running; l = tn.link(t, name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s running=%v not reached within %v (flags %v)", name, running, netWaitLimit, l.Attrs().Flags)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tn *vethNS) addAddr(t *testing.T, l netlink.Link, prefix string) {
	t.Helper()
	if err := tn.h.AddrAdd(l, netlinkAddr(t, prefix)); err != nil {
		t.Fatalf("add %s to %s: %v", prefix, l.Attrs().Name, err)
	}
}

func (tn *vethNS) delAddr(t *testing.T, l netlink.Link, prefix string) {
	t.Helper()
	if err := tn.h.AddrDel(l, netlinkAddr(t, prefix)); err != nil {
		t.Fatalf("delete %s from %s: %v", prefix, l.Attrs().Name, err)
	}
}

func netlinkAddr(t *testing.T, prefix string) *netlink.Addr {
	t.Helper()
	ip, ipnet, err := net.ParseCIDR(prefix)
	if err != nil {
		t.Fatalf("bad test prefix %q: %v", prefix, err)
	}
	ipnet.IP = ip
	return &netlink.Addr{IPNet: ipnet}
}

func startNetWatcher(t *testing.T, opts ...Option) *Watcher {
	t.Helper()
	w, err := New(nil, append([]Option{WithWakeCheck(0)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// expectNetChange reads until want arrives. Link changes of the links in ignore are skipped
// (a veth peer's state follows its partner's); any other change fails the test.
func expectNetChange(t *testing.T, w *Watcher, want Change, ignore ...string) {
	t.Helper()
	deadline := time.After(netWaitLimit)
	for {
		select {
		case c, ok := <-w.Changes():
			if !ok {
				t.Fatalf("Changes() closed while waiting for %q", want)
			}
			if c == want {
				return
			}
			if (c.Kind == LinkUp || c.Kind == LinkDown) && slices.Contains(ignore, c.Link) {
				continue
			}
			t.Fatalf("got change %q while waiting for %q", c, want)
		case <-deadline:
			t.Fatalf("no %q within %v", want, netWaitLimit)
		}
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestNetWatchLinkAndAddrChanges(t *testing.T) {
	tn := newVethNS(t)
	tn.setUp(t, tn.b, true) // nw0 runs only while its peer is up too
	w := startNetWatcher(t, WithNetNS(tn.ns))

	tn.setUp(t, tn.a, true)
	expectNetChange(t, w, Change{Kind: LinkUp, Link: "nw0"}, "nw1")
	tn.addAddr(t, tn.a, "10.123.0.1/24")
	expectNetChange(t, w, Change{Kind: AddrAdded, Link: "nw0", Addr: mustPrefix("10.123.0.1/24")}, "nw1")
	tn.setUp(t, tn.a, false)
	expectNetChange(t, w, Change{Kind: LinkDown, Link: "nw0"}, "nw1")
	tn.delAddr(t, tn.a, "10.123.0.1/24")
	expectNetChange(t, w, Change{Kind: AddrRemoved, Link: "nw0", Addr: mustPrefix("10.123.0.1/24")}, "nw1")
}

// Updates that flip nothing, the loopback link, link-local addresses and the state present
// at start are not reported: the first change after them must be the sentinel.
func TestNetWatchFiltersNoise(t *testing.T) {
	tn := newVethNS(t)
	tn.setUp(t, tn.b, true)
	tn.setUp(t, tn.a, true)
	tn.addAddr(t, tn.a, "10.123.9.50/24") // baseline, present before watching starts
	// Both ends running before watching starts: their up flips are part of the baseline.
	tn.waitRunning(t, "nw0", true)
	tn.waitRunning(t, "nw1", true)
	w := startNetWatcher(t, WithNetNS(tn.ns))

	lo := tn.link(t, "lo")
	tn.setUp(t, lo, true)
	tn.addAddr(t, lo, "10.200.0.1/32")
	if err := tn.h.LinkSetMTU(tn.a, 1400); err != nil {
		t.Fatalf("set MTU: %v", err)
	}
	tn.addAddr(t, tn.a, "fe80::1234/64")
	tn.addAddr(t, tn.a, "169.254.9.9/16")
	tn.addAddr(t, tn.a, "10.123.0.7/24")
	expectNetChange(t, w, Change{Kind: AddrAdded, Link: "nw0", Addr: mustPrefix("10.123.0.7/24")})
	if err := tn.h.LinkSetMTU(tn.a, 1300); err != nil {
		t.Fatalf("set MTU: %v", err)
	}
	tn.delAddr(t, tn.a, "10.123.9.50/24")
	expectNetChange(t, w, Change{Kind: AddrRemoved, Link: "nw0", Addr: mustPrefix("10.123.9.50/24")})
}

// readChangesUntil reads w's changes until want arrives and returns the changes read before it.
func readChangesUntil(t *testing.T, w *Watcher, want Change) []Change {
	t.Helper()
	var before []Change
	timeout := time.After(netWaitLimit)
	for {
		select {
		case c, ok := <-w.Changes():
			if !ok {
				t.Fatalf("Changes() closed while waiting for %q", want)
			}
			if c == want {
				return before
			}
			before = append(before, c)
		case <-timeout:
			t.Fatalf("no %q within %v (read before it: %q)", want, netWaitLimit, before)
		}
	}
}

// A reader that never reads must not stall the watcher: changes beyond the buffer are
// dropped oldest first, the newest still arrive, and Close returns.
//
// Link and address notifications come over separate sockets, so their relative order is
// not defined; each phase below makes the changes it checks the newest on their socket.
func TestNetWatchSlowReaderDoesNotBlock(t *testing.T) {
	tn := newVethNS(t)
	const buffer = 8
	idle := startNetWatcher(t, WithNetNS(tn.ns), WithBuffer(buffer)) // never read before Close
	late := startNetWatcher(t, WithNetNS(tn.ns), WithBuffer(buffer)) // read after each flood

	// Phase 1: nw1 is down, so nw0 flaps administratively but never runs; the watchers digest
	// every link update, and only the 40 address additions are reportable.
	for i := range 20 {
		tn.setUp(t, tn.a, true)
		tn.addAddr(t, tn.a, fmt.Sprintf("10.123.1.%d/32", i+1))
		tn.setUp(t, tn.a, false)
		tn.addAddr(t, tn.a, fmt.Sprintf("10.123.1.%d/32", i+101))
	}
	// Without a reader exactly 40-8 additions are dropped once all 40 are digested.
	const additions = 40
	deadline := time.Now().Add(netWaitLimit)
	for idle.Dropped() < additions-buffer || late.Dropped() < additions-buffer {
		if time.Now().After(deadline) {
			t.Fatalf("watchers dropped idle %d, late %d changes within %v, want %d: is a watcher blocked on its reader?",
				idle.Dropped(), late.Dropped(), netWaitLimit, additions-buffer)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if late.resyncs.Load() != 0 {
		t.Fatalf("the kernel overran the netlink socket (%d resyncs); the expected order below assumes it did not", late.resyncs.Load())
	}
	tn.addAddr(t, tn.a, "10.123.2.1/32")
	got := readChangesUntil(t, late, Change{Kind: AddrAdded, Link: "nw0", Addr: mustPrefix("10.123.2.1/32")})
	// The buffer held the newest 8 additions, oldest first. The sentinel took the slot of the
	// oldest, unless the reader had already taken that one.
	var want []Change
	for _, host := range []int{17, 117, 18, 118, 19, 119, 20, 120} {
		want = append(want, Change{Kind: AddrAdded, Link: "nw0", Addr: mustPrefix(fmt.Sprintf("10.123.1.%d/32", host))})
	}
	if !slices.Equal(got, want) && !slices.Equal(got, want[1:]) {
		t.Errorf("late reader got %q before the newest change, want the newest additions %q", got, want)
	}

	// Phase 2: real flaps. The last change of nw0 the reader sees must be its final state.
	dropped := late.Dropped()
	tn.setUp(t, tn.b, true)
	for range 10 { // wait out each flip: the kernel coalesces carrier changes it has not processed
		tn.setUp(t, tn.a, true)
		tn.waitRunning(t, "nw0", true)
		tn.setUp(t, tn.a, false)
		tn.waitRunning(t, "nw0", false)
	}
	la := netlink.NewLinkAttrs()
	la.Name = "nw2"
	if err := tn.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "nw3"}); err != nil {
		t.Fatalf("add veth nw2: %v", err)
	}
	tn.setUp(t, tn.link(t, "nw3"), true)
	tn.setUp(t, tn.link(t, "nw2"), true) // nw2 up: after every nw0/nw1 change on the link socket
	// The 20 flips of nw0 alone overflow the buffer of 8; wait until the watcher, which
	// may lag on a loaded machine, has digested them before the reader starts.
	deadline = time.Now().Add(netWaitLimit)
	for late.Dropped()-dropped < 20-buffer {
		if time.Now().After(deadline) {
			t.Fatalf("late watcher dropped %d changes of the flaps within %v, want at least %d", late.Dropped()-dropped, netWaitLimit, 20-buffer)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got = readChangesUntil(t, late, Change{Kind: LinkUp, Link: "nw2"})
	var last *Change
	for i := range got {
		if got[i].Link == "nw0" {
			last = &got[i]
		}
	}
	if last == nil || last.Kind == LinkUp || late.Dropped() == dropped {
		t.Errorf("last nw0 change read = %v, want nw0 down after drops (dropped %d more, read %q)", last, late.Dropped()-dropped, got)
	}
	t.Logf("phase 2: late reader got %q, dropped %d more", got, late.Dropped()-dropped)

	closed := make(chan struct{})
	go func() {
		idle.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(netWaitLimit):
		t.Fatalf("Close did not return within %v while the reader never read", netWaitLimit)
	}
	n := 0
	for range idle.Changes() { // ends only if Close closed the channel
		n++
	}
	if n > buffer {
		t.Errorf("idle watcher held %d changes, more than its buffer of %d", n, buffer)
	}
	t.Logf("dropped: idle %d, late %d; idle held %d at Close", idle.Dropped(), late.Dropped(), n)
}

func TestNetWatchCloseIdempotent(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) []Option
	}{
		{"own namespace", func(*testing.T) []Option { return nil }},
		{"test namespace", func(t *testing.T) []Option { return []Option{WithNetNS(newVethNS(t).ns)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts(t)
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			w, err := New(nil, opts...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					if err := w.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			select {
			case _, ok := <-w.Changes():
				for ok { // drain changes the host made meanwhile, if any
					_, ok = <-w.Changes()
				}
			case <-time.After(netWaitLimit):
				t.Fatal("Changes() not closed after Close")
			}
		})
	}
}

// When the kernel drops notifications (socket buffer overrun while the watcher is stalled),
// the watcher resubscribes and reports what changed meanwhile from a fresh dump.
func TestNetWatchResyncsAfterKernelDropsNotifications(t *testing.T) {
	tn := newVethNS(t)
	tn.setUp(t, tn.b, true)
	tn.addAddr(t, tn.a, "10.123.3.9/24")

	entered, release := make(chan struct{}), make(chan struct{})
	var stallOnce, releaseOnce sync.Once
	stall := func() { stallOnce.Do(func() { close(entered); <-release }) }
	w := startNetWatcher(t, WithNetNS(tn.ns), withRecvBuffer(1024), withUpdateHook(stall))
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // runs before w.Close

	tn.addAddr(t, tn.a, "10.123.6.1/24") // one notification: stalls the watcher goroutine
	select {
	case <-entered:
	case <-time.After(netWaitLimit):
		t.Fatalf("watcher saw no update within %v", netWaitLimit)
	}
	// The watcher goroutine is stalled: flood both subscriptions past their socket buffers,
	// then change the addresses; the kernel can no longer queue those notifications.
	for i := range 40 {
		tn.setUp(t, tn.a, i%2 == 1)
		tn.addAddr(t, tn.a, fmt.Sprintf("10.123.4.%d/32", i+1))
	}
	for i := range 40 {
		tn.delAddr(t, tn.a, fmt.Sprintf("10.123.4.%d/32", i+1))
	}
	tn.delAddr(t, tn.a, "10.123.3.9/24")
	tn.addAddr(t, tn.a, "10.123.3.1/24")
	releaseOnce.Do(func() { close(release) })

	removed := Change{Kind: AddrRemoved, Link: "nw0", Addr: mustPrefix("10.123.3.9/24")}
	added := Change{Kind: AddrAdded, Link: "nw0", Addr: mustPrefix("10.123.3.1/24")}
	var sawRemoved, sawAdded bool
	timeout := time.After(netWaitLimit)
	for !sawRemoved || !sawAdded || w.resyncs.Load() == 0 {
		select {
		case c := <-w.Changes():
			sawRemoved = sawRemoved || c == removed
			sawAdded = sawAdded || c == added
		case <-time.After(20 * time.Millisecond):
		case <-timeout:
			t.Fatalf("after overrun within %v: resyncs %d, saw %q %v, saw %q %v",
				netWaitLimit, w.resyncs.Load(), removed, sawRemoved, added, sawAdded)
		}
	}

	// The new link subscription is live: a link that did not exist before is reported.
	la := netlink.NewLinkAttrs()
	la.Name = "nw2"
	if err := tn.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "nw3"}); err != nil {
		t.Fatalf("add veth nw2: %v", err)
	}
	tn.setUp(t, tn.link(t, "nw3"), true)
	tn.setUp(t, tn.link(t, "nw2"), true)
	want := Change{Kind: LinkUp, Link: "nw2"}
	timeout = time.After(netWaitLimit)
	for found := false; !found; {
		select {
		case c := <-w.Changes():
			found = c == want
		case <-timeout:
			t.Fatalf("no %q within %v after resubscribing", want, netWaitLimit)
		}
	}
	t.Logf("resyncs %d, dropped %d", w.resyncs.Load(), w.Dropped())
}

// Watching another namespace never moves the calling thread out of its own.
func TestNetWatchLeavesCallerNamespace(t *testing.T) {
	tn := newVethNS(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatalf("get current namespace: %v", err)
	}
	defer before.Close()
	w := startNetWatcher(t, WithNetNS(tn.ns))
	tn.setUp(t, tn.b, true)
	tn.setUp(t, tn.a, true)
	expectNetChange(t, w, Change{Kind: LinkUp, Link: "nw0"}, "nw1")
	w.Close()
	after, err := netns.Get()
	if err != nil {
		t.Fatalf("get current namespace: %v", err)
	}
	defer after.Close()
	if !before.Equal(after) || before.Equal(tn.ns) {
		t.Fatalf("calling thread moved: namespace before %s, after %s, test namespace %s", before, after, tn.ns)
	}
}

// Default routes: one added is reported, and the kernel dropping it with its link
// (which it does without a notification) is reported too.
func TestNetWatchDefaultRoutes(t *testing.T) {
	tn := newVethNS(t)
	tn.setUp(t, tn.b, true)
	tn.setUp(t, tn.a, true)
	tn.waitRunning(t, "nw0", true)
	tn.waitRunning(t, "nw1", true)
	tn.addAddr(t, tn.a, "10.123.7.1/24")
	w := startNetWatcher(t, WithNetNS(tn.ns))

	gw := netip.MustParseAddr("10.123.7.254")
	route := func() *netlink.Route {
		return &netlink.Route{LinkIndex: tn.a.Attrs().Index, Gw: net.IP(gw.AsSlice())}
	}
	if err := tn.h.RouteAdd(route()); err != nil {
		t.Fatalf("add default route: %v", err)
	}
	gained := Change{Kind: DefaultRouteGained, Link: "nw0", Gateway: gw}
	lost := Change{Kind: DefaultRouteLost, Link: "nw0", Gateway: gw}
	expectNetChange(t, w, gained, "nw1")
	tn.setUp(t, tn.a, false)
	expectNetChange(t, w, Change{Kind: LinkDown, Link: "nw0"}, "nw1")
	expectNetChange(t, w, lost, "nw1")

	tn.setUp(t, tn.a, true)
	tn.waitRunning(t, "nw0", true)
	expectNetChange(t, w, Change{Kind: LinkUp, Link: "nw0"}, "nw1")
	if err := tn.h.RouteAdd(route()); err != nil {
		t.Fatalf("add default route again: %v", err)
	}
	expectNetChange(t, w, gained, "nw1")
	if err := tn.h.RouteDel(route()); err != nil {
		t.Fatalf("delete default route: %v", err)
	}
	expectNetChange(t, w, lost, "nw1")
}

// The polling source reads the watched namespace's interfaces, not the caller's.
func TestPollingInNamespace(t *testing.T) {
	tn := newVethNS(t)
	tn.setUp(t, tn.b, true)
	w := startNetWatcher(t, WithNetNS(tn.ns), WithPolling(20*time.Millisecond))
	if !w.Polling() {
		t.Fatal("Polling() = false with WithPolling")
	}
	tn.setUp(t, tn.a, true)
	expectNetChange(t, w, Change{Kind: LinkUp, Link: "nw0"}, "nw1")
	tn.addAddr(t, tn.a, "10.123.8.1/24")
	expectNetChange(t, w, Change{Kind: AddrAdded, Link: "nw0", Addr: mustPrefix("10.123.8.1/24")}, "nw1")
	tn.delAddr(t, tn.a, "10.123.8.1/24")
	expectNetChange(t, w, Change{Kind: AddrRemoved, Link: "nw0", Addr: mustPrefix("10.123.8.1/24")}, "nw1")
}

// Every repetition of an outage is reported, not only the first: the watcher's
// state follows each change (the measurement cuts the same link and address again
// and again).
func TestNetWatchRepeatedOutages(t *testing.T) {
	tn := newVethNS(t)
	tn.setUp(t, tn.b, true)
	tn.setUp(t, tn.a, true)
	tn.waitRunning(t, "nw0", true)
	tn.addAddr(t, tn.a, "10.123.5.2/30")
	w := startNetWatcher(t, WithNetNS(tn.ns))
	addr := mustPrefix("10.123.5.2/30")
	for range 3 {
		tn.setUp(t, tn.a, false)
		expectNetChange(t, w, Change{Kind: LinkDown, Link: "nw0"}, "nw1")
		tn.setUp(t, tn.a, true)
		expectNetChange(t, w, Change{Kind: LinkUp, Link: "nw0"}, "nw1")
		tn.delAddr(t, tn.a, addr.String())
		expectNetChange(t, w, Change{Kind: AddrRemoved, Link: "nw0", Addr: addr}, "nw1")
		tn.addAddr(t, tn.a, addr.String())
		expectNetChange(t, w, Change{Kind: AddrAdded, Link: "nw0", Addr: addr}, "nw1")
	}
}

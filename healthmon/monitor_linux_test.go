//go:build linux

package healthmon_test

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/netwatch"
)

// vethPair is a fresh network namespace holding the veth pair hm0 <-> hm1.
type vethPair struct {
	ns netns.NsHandle
	h  *netlink.Handle // bound to ns
}

// newVethPair creates the namespace on a locked thread and moves that thread back;
// the namespace goes away in t.Cleanup. It skips the test without root.
func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	type result struct {
		vp  *vethPair
		err error
	}
	resc := make(chan result, 1)
	go func() {
		// The thread stays locked (and retires with this goroutine) unless it is
		// back in its own namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			resc <- result{err: err}
			return
		}
		h, err := netlink.NewHandle()
		if err == nil {
			err = netns.Set(orig)
		}
		if err != nil {
			if h != nil {
				h.Close()
			}
			ns.Close()
			resc <- result{err: err}
			return
		}
		runtime.UnlockOSThread()
		resc <- result{vp: &vethPair{ns: ns, h: h}}
	}()
	r := <-resc
	if r.err != nil {
		t.Skipf("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to create a network namespace: %v", r.err)
	}
	vp := r.vp
	t.Cleanup(func() {
		vp.h.Close()
		vp.ns.Close()
	})
	la := netlink.NewLinkAttrs()
	la.Name = "hm0"
	if err := vp.h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "hm1"}); err != nil {
		t.Skipf("needs veth support in the test namespace: %v", err)
	}
	return vp
}

func (vp *vethPair) set(t *testing.T, name string, up bool) {
	t.Helper()
	l, err := vp.h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if up {
		err = vp.h.LinkSetUp(l)
	} else {
		err = vp.h.LinkSetDown(l)
	}
	if err != nil {
		t.Fatalf("set %s up=%v: %v", name, up, err)
	}
}

// waitRunning waits until the kernel reports name up and running (carrier on):
// veth carrier comes up asynchronously, and the watcher reports it as a change.
func (vp *vethPair) waitRunning(t *testing.T, name string) {
	t.Helper()
	waitUntil(t, name+" running", func() bool {
		l, err := vp.h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		f := l.Attrs().RawFlags
		return f&unix.IFF_UP != 0 && f&unix.IFF_RUNNING != 0
	})
}

// TestKernelLinkUpRecoversAtOnce: with the real kernel watcher in a namespace the
// test owns, a link going down only triggers a check, and the link coming back
// lifts the Recover backoff (an hour here) and makes the monitor probe and
// recover at once (or when the probe interval, 100 ms, since the first probe has
// passed).
func TestKernelLinkUpRecoversAtOnce(t *testing.T) {
	const probeInterval = 100 * time.Millisecond
	vp := newVethPair(t)
	vp.set(t, "hm0", true)
	vp.set(t, "hm1", true)
	vp.waitRunning(t, "hm0")
	vp.waitRunning(t, "hm1")

	n := newFakeNode(t, 10)
	var linkBack atomic.Bool
	// Probes succeed; a Recover only heals the node once the link is back.
	rec := &fakeRecoverer{onRecover: func() {
		if linkBack.Load() {
			n.setLive(10)
		}
	}}
	rec.setProbeOK(func() bool { return true })
	tr := &recordingTracer{}
	m, err := healthmon.New(n, n, healthmon.WithNetWatch(true), healthmon.WithNetWatchOptions(netwatch.WithNetNS(vp.ns)),
		healthmon.WithRecoverer(rec), healthmon.WithProbeInterval(probeInterval, probeInterval),
		healthmon.WithRecoverBackoff(time.Hour, time.Hour), healthmon.WithMetricsTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	// Probe, Recover, node still Unhealthy: the backoff keeps probes away.
	waitUntil(t, "the first recovery to complete", func() bool { return len(tr.recoveryResults()) >= 1 })

	// Setup, not an assertion: once a probe interval has passed since the first
	// probe, a signal probes at once, so a probe wrongly caused by the link going
	// down would run before the link is back.
	time.Sleep(probeInterval)
	checks := tr.checkCount()
	vp.set(t, "hm0", false)
	waitUntil(t, "a check after the link went down", func() bool { return tr.checkCount() > checks })
	// And one more interval, so such a signal could not swallow the link-up one
	// (at most one per probe interval takes effect).
	time.Sleep(probeInterval)

	linkBack.Store(true)
	up := time.Now()
	vp.set(t, "hm0", true)
	waitUntil(t, "a second recovery", func() bool { return len(rec.recoverTimes()) >= 2 })
	waitUntil(t, "healthy", m.IsHealthy)
	// A probe caused by the link going down would show here as a third probe and
	// a third recovery (its Recover ran before the link was back and did not heal).
	probes, recovers := rec.probeTimes(), rec.recoverTimes()
	if len(probes) != 2 || len(recovers) != 2 {
		t.Fatalf("%d probes and %d recoveries, want 2 each: one at the start, one when the link came up", len(probes), len(recovers))
	}
	if probes[1].Before(up) || recovers[1].Before(probes[1]) {
		t.Fatalf("second probe %v and recovery %v after the link came up, want both after it", probes[1].Sub(up), recovers[1].Sub(up))
	}
	t.Logf("link up -> probe %v, -> recovery %v", probes[1].Sub(up).Round(time.Microsecond), recovers[1].Sub(up).Round(time.Microsecond))
	if got := fmt.Sprint(tr.recoveryTriggers(up)); got != "[probe]" {
		t.Errorf("recovery triggers %s, want [probe]", got)
	}
}

// TestMonitorPublishesNetworkChanges: the watcher the monitor starts emits
// netwatch.EvtNetworkChanged on the host's bus, for the host's other components.
func TestMonitorPublishesNetworkChanges(t *testing.T) {
	vp := newVethPair(t)
	vp.set(t, "hm1", true)
	n := newFakeNode(t, 10)
	n.setLive(10)
	sub, err := n.bus.Subscribe(new(netwatch.EvtNetworkChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	m, err := healthmon.New(n, n, healthmon.WithNetWatch(true), healthmon.WithNetWatchOptions(netwatch.WithNetNS(vp.ns)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	vp.set(t, "hm0", true)
	want := netwatch.Change{Kind: netwatch.LinkUp, Link: "hm0"}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-sub.Out():
			ev := e.(netwatch.EvtNetworkChanged)
			if slices.Contains(ev.Changes, want) {
				if !ev.Gained() {
					t.Errorf("event %+v holds %q but Gained() = false", ev, want)
				}
				return
			}
		case <-timeout:
			t.Fatalf("no EvtNetworkChanged with %q within 30 s", want)
		}
	}
}

//go:build linux

package healthmon_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
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

// TestKernelLinkUpRecoversAtOnce: with the real kernel watcher in a namespace the
// test owns, a link going down only triggers a check, and the link coming back
// makes the monitor probe at once (the probe interval is an hour) and recover.
func TestKernelLinkUpRecoversAtOnce(t *testing.T) {
	vp := newVethPair(t)
	vp.set(t, "hm0", true)
	vp.set(t, "hm1", true)

	n := newFakeNode(t, 10)
	rec := &fakeRecoverer{onRecover: func() { n.setLive(10) }}
	tr := &recordingTracer{}
	m, err := healthmon.New(n, n, healthmon.WithNetWatch(true), healthmon.WithNetWatchOptions(healthmon.WithNetNS(vp.ns)),
		healthmon.WithRecoverer(rec), healthmon.WithProbeInterval(time.Hour), healthmon.WithMetricsTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first probe", func() bool { return len(rec.probeTimes()) == 1 })

	checks := tr.checkCount()
	vp.set(t, "hm0", false)
	waitUntil(t, "a check after the link went down", func() bool { return tr.checkCount() > checks })
	time.Sleep(200 * time.Millisecond) // a probe would come at once
	if p := len(rec.probeTimes()); p != 1 {
		t.Fatalf("%d probes after the link went down, want still 1", p)
	}

	rec.setProbeOK(func() bool { return true })
	up := time.Now()
	vp.set(t, "hm0", true)
	waitUntil(t, "a probe after the link came up", func() bool { return len(rec.probeTimes()) == 2 })
	waitUntil(t, "a recovery", func() bool { return len(rec.recoverTimes()) == 1 })
	probe, recovered := rec.probeTimes()[1], rec.recoverTimes()[0]
	t.Logf("link up -> probe %v, -> recovery %v", probe.Sub(up).Round(time.Microsecond), recovered.Sub(up).Round(time.Microsecond))
	waitUntil(t, "healthy", m.IsHealthy)
	if got := fmt.Sprint(tr.recoveryTriggers(up)); got != "[probe]" {
		t.Errorf("recovery triggers %s, want [probe]", got)
	}
}

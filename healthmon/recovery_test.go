package healthmon_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/netwatch"
)

// TestSignalProbesAtOnce: a network signal right after a probe probes at once
// (signals are never delayed), and the cadence starts over from it.
func TestSignalProbesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = healthmon.DefaultProbeInterval
		n := newFakeNode(t, 10)
		rec := &fakeRecoverer{}
		netCh := make(chan netwatch.Change)
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithNetChanges(netCh))
		start := time.Now()
		synctest.Wait()
		time.Sleep(100 * time.Millisecond)
		signal := time.Now()
		netCh <- netwatch.Change{Kind: netwatch.LinkUp, Link: "eth0"}
		time.Sleep(time.Minute)
		synctest.Wait()

		probes := rec.probeTimes()
		if len(probes) < 3 || !probes[0].Equal(start) || !probes[1].Equal(signal) {
			t.Fatalf("probes at %v, want the first at the start and the second at the signal", sinceAll(probes, start))
		}
		if gap := probes[2].Sub(probes[1]); gap < interval*9/10 || gap > interval*11/10 {
			t.Errorf("third probe %v after the signal's, want one probe interval (%v ±10%%)", gap, interval)
		}
	})
}

// TestFlappingSignalsAreCounted: a burst of signals (a flapping link) probes at
// once for the first three only; the rest wait for the probe interval (±10%).
func TestFlappingSignalsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = healthmon.DefaultProbeInterval
		n := newFakeNode(t, 10)
		rec := &fakeRecoverer{}
		netCh := make(chan netwatch.Change)
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithNetChanges(netCh))
		start := time.Now()
		synctest.Wait()
		for range 6 {
			time.Sleep(100 * time.Millisecond)
			netCh <- netwatch.Change{Kind: netwatch.LinkUp, Link: "eth0"}
			synctest.Wait()
		}
		burstEnd := time.Now()
		time.Sleep(interval / 2)
		synctest.Wait()
		probes := rec.probeTimes()
		if len(probes) != 4 {
			t.Fatalf("probes at %v, want 4: the start's and the first three signals'", sinceAll(probes, start))
		}
		time.Sleep(interval)
		synctest.Wait()
		if p := rec.probeTimes(); len(p) != 5 || p[4].Sub(p[3]) < interval*9/10 || p[4].Sub(p[3]) > interval*11/10 {
			t.Errorf("probes at %v after the burst (ended at %v), want the next one probe interval after the last",
				sinceAll(p, start), burstEnd.Sub(start))
		}
	})
}

// TestRecoverOwnConnectionsAreNoEvidence: the connections a Recover opens itself
// are no evidence that the network works, even when their events trail its
// return; after a Recover that left the node not healthy, the next Recover
// follows a successful probe.
func TestRecoverOwnConnectionsAreNoEvidence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recover func(n *fakeNode, k int) // the k-th Recover (from 1)
	}{
		{"table peer connected while Recover runs", func(n *fakeNode, k int) {
			n.setLive(k) // one more table peer each time: Degraded, never Healthy
			time.Sleep(time.Second)
		}},
		{"stranger connected, its event trailing Recover", func(n *fakeNode, k int) {
			n.connectLagging(peer.ID(fmt.Sprintf("stranger-%d", k)), 100*time.Millisecond) // still Unhealthy
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newFakeNode(t, 10)
				k := 0
				rec := &fakeRecoverer{onRecover: func() {
					k++
					tc.recover(n, k)
				}}
				rec.setProbeOK(func() bool { return true })
				tr := &recordingTracer{}
				startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithMetricsTracer(tr),
					healthmon.WithMinPeers(10))
				time.Sleep(2 * time.Minute)
				synctest.Wait()

				r, p := rec.recoverTimes(), rec.probeTimes()
				if len(r) < 3 {
					t.Fatalf("%d recoveries", len(r))
				}
				for i, at := range r {
					followsProbe := false
					for _, pt := range p {
						followsProbe = followsProbe || pt.Equal(at)
					}
					if !followsProbe {
						t.Errorf("recovery %d at %v without a probe (probes at %v)", i, at, p)
					}
				}
				for i, tg := range tr.recoveryTriggers(time.Time{}) {
					if tg != healthmon.TriggerProbe {
						t.Errorf("recovery %d triggered by %v, want probe", i, tg)
					}
				}
			})
		})
	}
}

// TestConnectionRightAfterRecoverIsEvidence: a peer that was not connected when
// a Recover returned and connects right after is evidence (only the trailing
// events of the Recover's own connections are not).
func TestConnectionRightAfterRecoverIsEvidence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const backoff = 5 * time.Second
		n := newFakeNode(t, 10)
		rec := &fakeRecoverer{} // connects nothing: the node stays Unhealthy
		rec.setProbeOK(func() bool { return true })
		tr := &recordingTracer{}
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithMetricsTracer(tr),
			healthmon.WithProbeInterval(time.Hour, time.Hour), healthmon.WithRecoverBackoff(backoff, time.Minute))
		start := time.Now()
		synctest.Wait() // probe, Recover, backoff
		time.Sleep(10 * time.Millisecond)
		n.setConnected("inbound-stranger", true)
		time.Sleep(time.Minute)
		synctest.Wait()

		r := rec.recoverTimes()
		if len(r) != 2 || r[1].Sub(start) != backoff {
			t.Fatalf("recoveries at %v after the start, want two, the second when the backoff (%v) ends", sinceAll(r, start), backoff)
		}
		if got := fmt.Sprint(tr.recoveryTriggers(time.Time{})); got != "[probe connection]" {
			t.Errorf("recovery triggers %s, want [probe connection]", got)
		}
	})
}

// TestHealthyCancelsRecover: a Recover still running when the node is healthy is
// cancelled (counted as ok), and a later loss probes at once.
func TestHealthyCancelsRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		rec := &fakeRecoverer{recoverCtx: func(ctx context.Context) error {
			n.setLive(10) // healthy at once; Recover goes on dialing dead peers
			<-ctx.Done()
			return context.Cause(ctx)
		}}
		rec.setProbeOK(func() bool { return true })
		tr := &recordingTracer{}
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithMetricsTracer(tr))
		start := time.Now()
		synctest.Wait()

		if ends := rec.recoverEndTimes(); len(ends) != 1 || !ends[0].Equal(start) {
			t.Fatalf("Recover returned at %v, want cancelled at once (%v) when the node is healthy", ends, start)
		}
		if got := tr.recoveryResults(); len(got) != 1 || !got[0] {
			t.Errorf("recovery results %v, want [true]: cancelled because healthy", got)
		}

		time.Sleep(10 * time.Second)
		lost := time.Now()
		n.setLive(0)
		synctest.Wait()
		if p := rec.probeTimes(); len(p) != 2 || !p[1].Equal(lost) {
			t.Errorf("probes at %v, want the second at the loss (%v)", p, lost)
		}
	})
}

// TestSignalDuringRecoverLiftsBackoff: a network change while a Recover runs
// lifts the backoff that would follow it, as one after it would.
func TestSignalDuringRecoverLiftsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		n.setLive(2)
		rec := &fakeRecoverer{onRecover: func() { time.Sleep(2 * time.Second) }}
		rec.setProbeOK(func() bool { return true })
		netCh := make(chan netwatch.Change)
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithNetChanges(netCh),
			healthmon.WithRecoverBackoff(time.Hour, time.Hour))
		start := time.Now()
		time.Sleep(time.Second)
		netCh <- netwatch.Change{Kind: netwatch.LinkUp, Link: "eth0"}
		time.Sleep(time.Minute)
		synctest.Wait()

		// The signal came while the Recover ran (0-2 s): the next probe starts
		// as soon as it returned.
		p := rec.probeTimes()
		if len(p) != 2 || p[1].Sub(start) != 2*time.Second {
			t.Fatalf("probes at %v after the start, want two, the second when the Recover returned (2s)",
				sinceAll(p, start))
		}
		if r := rec.recoverTimes(); len(r) != 2 || !r[1].Equal(p[1]) {
			t.Fatalf("recoveries at %v after the start, want the second at the second probe", sinceAll(r, start))
		}
	})
}

func sinceAll(ts []time.Time, start time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.Sub(start))
	}
	return out
}

package healthmon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/netwatch"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestNewRejectsBadInput(t *testing.T) {
	n := newFakeNode(t, 0)
	cases := []struct {
		name string
		opt  healthmon.Option
		want string
	}{
		{"min peers", healthmon.WithMinPeers(0), "WithMinPeers"},
		{"check interval", healthmon.WithCheckInterval(0), "WithCheckInterval"},
		{"probe interval", healthmon.WithProbeInterval(-time.Second, time.Second), "WithProbeInterval"},
		{"probe timeout", healthmon.WithProbeTimeout(0), "WithProbeTimeout"},
		{"recover timeout", healthmon.WithRecoverTimeout(0), "WithRecoverTimeout"},
		{"recover backoff", healthmon.WithRecoverBackoff(0, time.Second), "WithRecoverBackoff: first"},
		{"max recover backoff", healthmon.WithRecoverBackoff(time.Second, time.Millisecond), "WithRecoverBackoff: max"},
		{"healthyFor", healthmon.WithHysteresis(-1, 0), "healthyFor"},
		{"minDwell", healthmon.WithHysteresis(0, -1), "minDwell"},
		{"recoverer", healthmon.WithRecoverer(nil), "WithRecoverer"},
		{"manager", healthmon.WithManager(nil), "WithManager"},
		{"net changes", healthmon.WithNetChanges(nil), "WithNetChanges"},
		{"net watch options", healthmon.WithNetWatchOptions(nil), "WithNetWatchOptions"},
		{"nil option", nil, "opts[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := healthmon.New(n, n, c.opt)
			if err == nil {
				_ = m.Close()
				t.Fatal("New accepted a bad option")
			}
			if !errors.Is(err, healthmon.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q: want ErrInvalidOption naming %q", err, c.want)
			}
		})
	}
	if _, err := healthmon.New(nil, n); !errors.Is(err, healthmon.ErrInvalidOption) || !strings.Contains(err.Error(), "h is nil") {
		t.Fatalf("New(nil host): %v", err)
	}
	if _, err := healthmon.New(n, nil); !errors.Is(err, healthmon.ErrInvalidOption) || !strings.Contains(err.Error(), "rt is nil") {
		t.Fatalf("New(nil table): %v", err)
	}
}

func TestStatusThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		mgr, err := resilience.NewConnectionManager()
		if err != nil {
			t.Fatal(err)
		}
		mgr.RecordFailure("a", resilience.Permanent(errUnreachable)) // Failed
		mgr.RecordAttempt("b")                                       // Connecting
		m, err := healthmon.New(n, n, healthmon.WithNetWatch(false), healthmon.WithMinPeers(4),
			healthmon.WithHysteresis(0, 0), healthmon.WithManager(mgr))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		n.setConnected("not-in-table", true) // connections outside the table do not count
		for _, c := range []struct {
			live int
			want healthmon.Status
		}{{0, healthmon.Unhealthy}, {1, healthmon.Degraded}, {3, healthmon.Degraded}, {4, healthmon.Healthy}, {10, healthmon.Healthy}, {0, healthmon.Unhealthy}} {
			n.setLive(c.live)
			rep := m.CheckHealth(context.Background())
			if rep.Status != c.want || rep.Observed != c.want || rep.IsHealthy != (c.want == healthmon.Healthy) || m.IsHealthy() != rep.IsHealthy {
				t.Fatalf("live %d: report %+v, IsHealthy %v; want %v", c.live, rep, m.IsHealthy(), c.want)
			}
			if rep.TablePeersConnected != c.live || rep.RoutingTableSize != 10 || rep.ConnectedPeers != c.live+1 ||
				rep.MinPeersThreshold != 4 || rep.FailedConnections != 1 || rep.RecoveringConnections != 1 || rep.Timestamp.IsZero() {
				t.Fatalf("live %d: report %+v", c.live, rep)
			}
		}
	})
}

// TestHysteresisDampsFlapping: a link that flaps (kernel changes injected, the
// table following it) never makes the reported status change faster than the
// hysteresis allows, whatever the flapping speed: no reversal within minDwell, no
// Healthy without healthyFor of healthy table before it.
func TestHysteresisDampsFlapping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const healthyFor, minDwell = time.Second, 5 * time.Second
		n := newFakeNode(t, 10)
		n.setLive(10)
		netCh := make(chan netwatch.Change, 1)
		tr := &recordingTracer{}
		startMonitor(t, n, healthmon.WithNetChanges(netCh), healthmon.WithHysteresis(healthyFor, minDwell),
			healthmon.WithMetricsTracer(tr))
		synctest.Wait()

		start := time.Now()
		var healthySince time.Time // zero while the table is unhealthy
		var healthyRuns []struct{ from, to time.Time }
		flap := func(up bool) {
			if up {
				n.setLive(10)
				healthySince = time.Now()
			} else {
				n.setLive(0)
				healthyRuns = append(healthyRuns, struct{ from, to time.Time }{healthySince, time.Now()})
				healthySince = time.Time{}
			}
			kind := netwatch.LinkDown
			if up {
				kind = netwatch.LinkUp
			}
			netCh <- netwatch.Change{Kind: kind, Link: "eth0"}
			synctest.Wait()
		}
		flap(false)
		healthyRuns = healthyRuns[:0]
		// Phase 1: flapping every 300 ms for 20 s; phase 2: every 3.5 s for 40 s.
		for _, phase := range []struct {
			every time.Duration
			n     int
		}{{300 * time.Millisecond, 66}, {3500 * time.Millisecond, 12}} {
			up := true
			for range phase.n {
				time.Sleep(phase.every)
				flap(up)
				up = !up
			}
		}
		time.Sleep(time.Minute) // let a held-back change land
		if !healthySince.IsZero() {
			healthyRuns = append(healthyRuns, struct{ from, to time.Time }{healthySince, time.Now()})
		}

		changes := tr.statusChanges()
		var inPhase2 int
		for i, c := range changes {
			if c.at.After(start.Add(21 * time.Second)) {
				inPhase2++
			}
			if i > 1 && (c.to > c.from) != (changes[i-1].to > changes[i-1].from) && c.at.Sub(changes[i-1].at) < minDwell {
				t.Errorf("changes %v -> %v at %v and %v -> %v at %v: reversal within minDwell",
					changes[i-1].from, changes[i-1].to, changes[i-1].at.Sub(start), c.from, c.to, c.at.Sub(start))
			}
			if c.to == healthmon.Healthy && c.from != healthmon.StatusUnknown {
				ok := false
				for _, r := range healthyRuns {
					ok = ok || (!c.at.Before(r.from.Add(healthyFor)) && !c.at.After(r.to))
				}
				if !ok {
					t.Errorf("Healthy reported at %v without %v of healthy table before it", c.at.Sub(start), healthyFor)
				}
			}
			if c.at.After(start) && c.at.Before(start.Add(20*time.Second)) && c.to == healthmon.Healthy {
				t.Errorf("Healthy reported at %v while the link flapped every 300 ms", c.at.Sub(start))
			}
		}
		if inPhase2 < 3 {
			t.Errorf("only %d status changes while the link flapped slowly: %+v", inPhase2, changes)
		}
	})
}

// TestLongOutageProbeCadence: during a long outage the monitor probes one peer at a
// time, the gaps growing 1.5x from P to the cap (each ±10%), and never recovers
// without evidence; with the defaults no 60-second window holds more than 16
// probe dials, and ten minutes about 150.
func TestLongOutageProbeCadence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		rec := &fakeRecoverer{}
		startMonitor(t, n, healthmon.WithRecoverer(rec))
		start := time.Now()
		time.Sleep(10 * time.Minute)
		synctest.Wait()

		probes := rec.probeTimes()
		if len(probes) < 135 || len(probes) > 165 {
			t.Fatalf("%d probes in 10 min, want 135..165", len(probes))
		}
		if !probes[0].Equal(start) {
			t.Errorf("first probe at %v, want at once", probes[0].Sub(start))
		}
		base := healthmon.DefaultProbeInterval
		for i := 1; i < len(probes); i++ {
			gap := probes[i].Sub(probes[i-1])
			if gap < base*9/10 || gap > base*11/10 {
				t.Errorf("probe %d after %v, want %v ±10%%", i, gap, base)
			}
			base = min(base*3/2, healthmon.DefaultMaxProbeInterval)
		}
		for i := range probes {
			inWindow := 0
			for _, p := range probes[i:] {
				if p.Sub(probes[i]) < time.Minute {
					inWindow++
				}
			}
			if inWindow > 16 {
				t.Fatalf("%d probes in the minute from %v", inWindow, probes[i].Sub(start))
			}
		}
		if r := rec.recoverTimes(); len(r) != 0 {
			t.Errorf("%d recoveries without any sign of the network", len(r))
		}
		if rec.maxInflt != 1 {
			t.Errorf("max %d recoverer calls at once, want 1", rec.maxInflt)
		}
	})
}

// TestFirstSuccessfulProbeRecoversOnce: the first probe that succeeds fans out at
// once, exactly once; once healthy, probing stops; a later loss starts afresh.
func TestFirstSuccessfulProbeRecoversOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		var networkUp bool
		rec := &fakeRecoverer{onRecover: func() { n.setLive(10) }}
		rec.setProbeOK(func() bool { return networkUp })
		tr := &recordingTracer{}
		m := startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithMetricsTracer(tr))
		start := time.Now()

		time.Sleep(47 * time.Second)
		rec.mu.Lock()
		networkUp = true
		rec.mu.Unlock()
		back := time.Now()
		before := len(rec.probeTimes())
		time.Sleep(3 * time.Minute)
		synctest.Wait()

		probes := rec.probeTimes()
		if after := len(probes) - before; after != 1 {
			t.Errorf("%d probes after the network came back, want 1", after)
		}
		recovers := rec.recoverTimes()
		if len(recovers) != 1 || !recovers[0].Equal(probes[len(probes)-1]) {
			t.Fatalf("recoveries at %v, last probe at %v: want one, at the successful probe", recovers, probes[len(probes)-1])
		}
		if wait := recovers[0].Sub(back); wait > healthmon.DefaultMaxProbeInterval*11/10 {
			t.Errorf("recovered %v after the network came back, more than one (stretched) probe gap", wait)
		}
		if got := tr.recoveryTriggers(time.Time{}); len(got) != 1 || got[0] != healthmon.TriggerProbe {
			t.Errorf("triggers %v, want [probe]", got)
		}
		if !m.IsHealthy() {
			t.Fatalf("not healthy after recovery: %+v", m.LastReport())
		}
		changes := tr.statusChanges()
		last := changes[len(changes)-1]
		if last.to != healthmon.Healthy || last.at.Sub(recovers[0]) != healthmon.DefaultHealthyFor {
			t.Errorf("last change %+v at %v after recovery, want Healthy after healthyFor", last, last.at.Sub(recovers[0]))
		}
		_ = start

		// Lose every peer again: probing starts afresh at once.
		lost := time.Now()
		n.setLive(0)
		synctest.Wait()
		probes = rec.probeTimes()
		if got := probes[len(probes)-1]; !got.Equal(lost) {
			t.Errorf("first probe %v after losing peers, want at once", got.Sub(lost))
		}
	})
}

// TestConnectionWhileUnhealthyRecoversAtOnce: a connection (inbound or not) while
// no table peer is connected starts a recovery at once, not at the next probe.
func TestConnectionWhileUnhealthyRecoversAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		rec := &fakeRecoverer{onRecover: func() { n.setLive(10) }}
		tr := &recordingTracer{}
		m := startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithMetricsTracer(tr),
			healthmon.WithProbeInterval(10*time.Minute, 10*time.Minute))
		time.Sleep(30 * time.Second)
		at := time.Now()
		n.setConnected(peer.ID("inbound-stranger"), true)
		synctest.Wait()

		if r := rec.recoverTimes(); len(r) != 1 || !r[0].Equal(at) {
			t.Fatalf("recoveries at %v, want one at the connection (%v)", r, at)
		}
		if got := tr.recoveryTriggers(time.Time{}); len(got) != 1 || got[0] != healthmon.TriggerConnection {
			t.Errorf("triggers %v, want [connection]", got)
		}
		if p := rec.probeTimes(); len(p) != 1 {
			t.Errorf("%d probes, want only the first one", len(p))
		}
		time.Sleep(healthmon.DefaultMinDwell)
		synctest.Wait()
		if !m.IsHealthy() {
			t.Fatalf("not healthy: %+v", m.LastReport())
		}
	})
}

// TestDegradedRecoversWithBackoff: with too few table peers and recoveries that do
// not help, each recovery follows a successful probe, and they are spaced 5 s, 10 s,
// 20 s, ... up to the cap.
func TestDegradedRecoversWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		n.setLive(2)
		rec := &fakeRecoverer{}
		rec.setProbeOK(func() bool { return true })
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithRecoverBackoff(5*time.Second, 40*time.Second))
		time.Sleep(5 * time.Minute)
		synctest.Wait()

		r, p := rec.recoverTimes(), rec.probeTimes()
		want := []time.Duration{5, 10, 20, 40, 40, 40} // seconds
		if len(r) < len(want)+1 {
			t.Fatalf("%d recoveries", len(r))
		}
		for i, w := range want {
			gap := r[i+1].Sub(r[i])
			// The first wait is also the probe gap, in [P, 1.2P].
			if gap != w*time.Second && (i > 0 || gap < 5*time.Second || gap > 6*time.Second) {
				t.Errorf("gap %d = %v, want %v", i, gap, w*time.Second)
			}
		}
		if len(p) != len(r) {
			t.Errorf("%d probes for %d recoveries, want one each", len(p), len(r))
		}
		for i := range min(len(p), len(r)) {
			if !p[i].Equal(r[i]) {
				t.Errorf("probe %d at %v, recovery at %v", i, p[i], r[i])
			}
		}
	})
}

// TestNetworkSignalsProbeAtOnce: a kernel link-up or address-added change, a local
// address change and a reachability change each lift the Recover backoff and make
// the monitor probe at once, even right after another (a burst of them is damped
// by counting, see TestFlappingSignalsAreCounted); link-down and address-removed
// do not. Recoveries leave the node Degraded, so without a signal the backoff keeps
// probes away for an hour.
func TestNetworkSignalsProbeAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Minute
		n := newFakeNode(t, 10)
		n.setLive(1)
		rec := &fakeRecoverer{}
		rec.setProbeOK(func() bool { return true })
		netCh := make(chan netwatch.Change)
		startMonitor(t, n, healthmon.WithRecoverer(rec), healthmon.WithNetChanges(netCh),
			healthmon.WithProbeInterval(interval, interval), healthmon.WithRecoverBackoff(time.Hour, time.Hour))
		addrs, err := n.bus.Emitter(new(event.EvtLocalAddressesUpdated))
		if err != nil {
			t.Fatal(err)
		}
		defer addrs.Close()
		reach, err := n.bus.Emitter(new(event.EvtLocalReachabilityChanged))
		if err != nil {
			t.Fatal(err)
		}
		defer reach.Close()
		link := func(kind netwatch.Kind) func() {
			return func() { netCh <- netwatch.Change{Kind: kind, Link: "eth0"} }
		}

		steps := []struct {
			name   string
			after  time.Duration
			signal func()
			probe  bool // a probe at the very instant of the signal
		}{
			{"link down", 2 * interval, link(netwatch.LinkDown), false},
			{"link up", 2 * interval, link(netwatch.LinkUp), true},
			{"link up again, a second later", time.Second, link(netwatch.LinkUp), true},
			{"address removed", 2 * interval, link(netwatch.AddrRemoved), false},
			{"address added", 2 * interval, link(netwatch.AddrAdded), true},
			{"local address removed", 2 * interval, func() {
				_ = addrs.Emit(event.EvtLocalAddressesUpdated{Diffs: true, Removed: []event.UpdatedAddress{
					{Address: ma.StringCast("/ip4/192.0.2.1/tcp/1"), Action: event.Removed}}})
			}, false},
			{"local address added", 2 * interval, func() {
				_ = addrs.Emit(event.EvtLocalAddressesUpdated{Diffs: true, Current: []event.UpdatedAddress{
					{Address: ma.StringCast("/ip4/192.0.2.1/tcp/1"), Action: event.Added}}})
			}, true},
			{"reachability", 2 * interval, func() {
				_ = reach.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPublic})
			}, true},
		}
		for _, s := range steps {
			time.Sleep(s.after)
			at := time.Now()
			s.signal()
			synctest.Wait()
			probed := false
			for _, p := range rec.probeTimes() {
				probed = probed || p.Equal(at)
			}
			if probed != s.probe {
				t.Errorf("%s: probe at the signal = %v, want %v", s.name, probed, s.probe)
			}
		}
		// The first probe and one per signal that took effect; nothing else.
		if p, r := len(rec.probeTimes()), len(rec.recoverTimes()); p != 6 || r != 6 {
			t.Errorf("%d probes and %d recoveries, want 6 each", p, r)
		}
	})
}

// TestSubscriberThatNeverReadsDoesNotBlock: a subscriber that never reads misses
// intermediate reports but never stalls checks, recovery or other subscribers,
// and its channel always holds the latest report.
func TestSubscriberThatNeverReadsDoesNotBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		tr := &recordingTracer{}
		rec := &fakeRecoverer{}
		m := startMonitor(t, n, healthmon.WithHysteresis(0, 0), healthmon.WithMetricsTracer(tr), healthmon.WithRecoverer(rec))
		stuck := m.Subscribe()
		reader := m.Subscribe()
		var seen []healthmon.HealthReport
		done := make(chan struct{})
		go func() {
			defer close(done)
			for r := range reader {
				seen = append(seen, r)
			}
		}()
		busSub, err := n.bus.Subscribe(new(healthmon.EvtHealthChanged))
		if err != nil {
			t.Fatal(err)
		}
		var busSeen []healthmon.EvtHealthChanged
		busDone := make(chan struct{})
		go func() {
			defer close(busDone)
			for e := range busSub.Out() {
				busSeen = append(busSeen, e.(healthmon.EvtHealthChanged))
			}
		}()

		for i := range 200 {
			n.setLive(10 * (i % 2))
			synctest.Wait()
			time.Sleep(time.Second)
		}
		if c := len(tr.statusChanges()); c < 200 {
			t.Fatalf("%d status changes for 200 flips", c)
		}
		// The node is unhealthy every other second; probes stay a probe interval
		// (5 s) apart across the flaps: 33-40 in 200 s unless recovery stalls.
		if p := len(rec.probeTimes()); p < 30 {
			t.Fatalf("%d probes: recovery stalled", p)
		}
		// The latest published report (later checks that changed nothing are not
		// published): the reader, which keeps up, has it last.
		m.Unsubscribe(reader)
		<-done
		if len(seen) < 150 {
			t.Fatalf("reader saw %d reports; want most of the %d changes", len(seen), len(tr.statusChanges()))
		}
		last := seen[len(seen)-1]
		if last.Status != m.LastReport().Status {
			t.Fatalf("reader's last report %+v, monitor's status %v", last, m.LastReport().Status)
		}
		select {
		case got := <-stuck:
			if got != last {
				t.Errorf("stuck subscriber holds %+v, want the latest %+v", got, last)
			}
		default:
			t.Error("stuck subscriber holds nothing")
		}
		select {
		case got := <-stuck:
			t.Errorf("stuck subscriber holds a second report %+v", got)
		default:
		}

		late, err := n.bus.Subscribe(new(healthmon.EvtHealthChanged))
		if err != nil {
			t.Fatal(err)
		}
		if e := (<-late.Out()).(healthmon.EvtHealthChanged); e.Current != last.Status || e.Report != last {
			t.Errorf("late bus subscriber got %+v, want the latest change", e)
		}
		_ = late.Close()

		_ = m.Close()
		if _, ok := <-stuck; ok {
			t.Error("Close left a subscriber channel open")
		}
		if _, ok := <-m.Subscribe(); ok {
			t.Error("Subscribe after Close returned an open channel")
		}
		_ = busSub.Close()
		<-busDone
		if len(busSeen) < 150 || busSeen[len(busSeen)-1].Report != last {
			t.Errorf("bus subscriber saw %d changes", len(busSeen))
		}
		for i, e := range busSeen {
			if e.Current != e.Report.Status || e.Previous == e.Current {
				t.Fatalf("bus event %d: %+v", i, e)
			}
		}
	})
}

func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		n.setLive(5)
		m, err := healthmon.New(n, n, healthmon.WithNetWatch(false))
		if err != nil {
			t.Fatal(err)
		}
		if m.IsHealthy() || m.LastReport().Status != healthmon.StatusUnknown {
			t.Fatal("healthy before any check")
		}
		if rep := m.CheckHealth(context.Background()); !rep.IsHealthy || !m.IsHealthy() {
			t.Fatalf("CheckHealth before Start: %+v", rep)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- m.Close() }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); !errors.Is(err, healthmon.ErrClosed) {
			t.Fatalf("Start after Close: %v", err)
		}
		if rep := m.CheckHealth(context.Background()); !rep.IsHealthy {
			t.Fatalf("CheckHealth after Close: %+v", rep)
		}

		// Never started: Close still releases everything.
		m2, err := healthmon.New(n, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := m2.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPeriodicChecks: without events the monitor checks every CheckInterval.
func TestPeriodicChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		n.setLive(10)
		tr := &recordingTracer{}
		startMonitor(t, n, healthmon.WithCheckInterval(7*time.Second), healthmon.WithMetricsTracer(tr))
		synctest.Wait()
		if c := tr.checkCount(); c != 1 {
			t.Fatalf("%d checks at start", c)
		}
		time.Sleep(70*time.Second + time.Millisecond)
		if c := tr.checkCount(); c != 11 {
			t.Fatalf("%d checks after 70 s, want 11", c)
		}
	})
}

// TestCloseWaitsForStalledBusSubscriber: Close waits for the goroutine that emits
// EvtHealthChanged; libp2p's Emit cannot be interrupted, so a bus subscriber that
// neither reads nor closes its subscription holds Close up until it does one of
// them (as documented on Close).
func TestCloseWaitsForStalledBusSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		m := startMonitor(t, n, healthmon.WithHysteresis(0, 0))
		sub, err := n.bus.Subscribe(new(healthmon.EvtHealthChanged), eventbus.BufSize(1))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 { // fill the subscription and stall the next Emit
			n.setLive(10 * (i % 2))
			synctest.Wait()
		}
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_ = m.Close()
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while an Emit to a stalled subscriber was pending; update Close's documentation")
		default:
		}
		_ = sub.Close()
		<-closed
	})
}

// TestRecoveryAfterLossIsReportedAtOnce: the first healthy check after a loss
// that was reported at least MinDwell ago reports Healthy at once (the table
// refilled from a state it had just lost: no flap risk), while a node that
// comes up healthy for the first time still waits HealthyFor.
func TestRecoveryAfterLossIsReportedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newFakeNode(t, 10)
		m := startMonitor(t, n)
		synctest.Wait()
		if m.IsHealthy() {
			t.Fatal("healthy with no table peer connected")
		}
		start := time.Now()
		n.setLive(10)
		synctest.Wait()
		if m.IsHealthy() {
			t.Fatal("first Healthy reported before HealthyFor passed")
		}
		time.Sleep(healthmon.DefaultHealthyFor)
		synctest.Wait()
		if !m.IsHealthy() {
			t.Fatalf("not healthy %v after the table filled", time.Since(start))
		}

		time.Sleep(time.Minute)
		n.setLive(0) // the outage: reported at once
		synctest.Wait()
		if m.IsHealthy() {
			t.Fatal("still healthy after the loss")
		}
		time.Sleep(20 * time.Second)
		n.setLive(2) // the refill passes through Degraded
		synctest.Wait()
		time.Sleep(50 * time.Millisecond)
		back := time.Now()
		n.setLive(10)
		synctest.Wait()
		if rep := m.LastReport(); !rep.IsHealthy || !rep.Timestamp.Equal(back) {
			t.Fatalf("after the table refilled: %+v, want Healthy reported at once (%v)", rep, back)
		}
	})
}

package healthmon_test

import (
	"context"
	"testing"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

// recordingRecoverer wraps a Recoverer and records its probes.
type recordingRecoverer struct {
	healthmon.Recoverer
	probeLog
}

func (r *recordingRecoverer) Probe(ctx context.Context) error {
	at := time.Now()
	err := r.Recoverer.Probe(ctx)
	r.record(at, err)
	return err
}

// TestBootstrapperRecoversAfterIsolation: the monitor drives the real
// bootstrap.Bootstrapper (on the dialer) through an outage: Unhealthy with failed
// trackers while cut off, and Healthy again after the first probe once the
// network is back.
func TestBootstrapperRecoversAfterIsolation(t *testing.T) {
	const probeInterval = 2 * time.Second
	nodes := dhtNetwork(t, 6, 4)
	a := nodes[0]
	dh, err := dialer.Wrap(a.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dh.Close() }) // runs before the node's Stop
	boot, err := bootstrap.New(dh, bootstrap.DHT(a.DHT()), otherInfos(nodes[1:4]))
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	rec := &recordingRecoverer{Recoverer: boot}
	tr := &recordingTracer{}
	m, err := healthmon.New(dh, bootstrap.DHT(a.DHT()), healthmon.WithNetWatch(false), healthmon.WithRecoverer(rec),
		healthmon.WithManager(dh.Manager()), healthmon.WithProbeInterval(probeInterval, probeInterval), healthmon.WithMetricsTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := m.Subscribe()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, sub, healthmon.Healthy)

	a.Isolate()
	waitStatus(t, sub, healthmon.Unhealthy)
	var isolated time.Time
	waitUntil(t, "the node to be cut off", func() bool {
		if m.CheckHealth(context.Background()).Observed == healthmon.Unhealthy {
			isolated = time.Now()
			return true
		}
		return false
	})
	waitUntil(t, "three probes while cut off", func() bool { return len(rec.probesSince(isolated)) >= 3 })
	if rep := m.CheckHealth(context.Background()); rep.FailedConnections+rep.RecoveringConnections == 0 {
		t.Errorf("no failed or recovering trackers while cut off: %+v", rep)
	}

	back := time.Now()
	a.Rejoin()
	rep := waitStatus(t, sub, healthmon.Healthy)
	t.Logf("healthy %v after the network came back: %+v", rep.Timestamp.Sub(back).Round(time.Millisecond), rep)
	var after []probeCall
	for _, p := range rec.probesSince(isolated) {
		if p.at.Before(back) && p.ok {
			t.Errorf("a probe succeeded while cut off: %+v", p)
		}
		if !p.at.Before(back) {
			after = append(after, p)
		}
	}
	if len(after) != 1 || !after[0].ok {
		t.Errorf("probes after the network came back: %+v; want exactly one, successful", after)
	}
	if got := tr.recoveryTriggers(back); len(got) != 1 || got[0] != healthmon.TriggerProbe {
		t.Errorf("recovery triggers %v, want [probe]", got)
	}
}

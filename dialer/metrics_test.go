package dialer_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
)

func TestMetricsTracer(t *testing.T) {
	reg := prometheus.NewRegistry()
	mt, err := dialer.NewMetricsTracer(dialer.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	// A second tracer on the same registry reuses the collectors.
	mt2, err := dialer.NewMetricsTracer(dialer.WithRegisterer(reg))
	if err != nil {
		t.Fatalf("second NewMetricsTracer: %v", err)
	}
	h, _ := newHost(t, dialer.WithMetricsTracer(mt))
	node := testnet.NewNode(t)
	if err := h.Connect(ctxTimeout(t), node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	mt2.DialAttempted(dialer.ClassTransient)
	mt2.ConnectJoined()
	mt2.ReconnectStarted()
	mt2.ReconnectSucceeded()
	mt2.ReconnectRoundFailed()
	mt2.RetryEventDropped()

	want := map[string]float64{
		"libp2p_resilience_dialer_dials_total":                   2, // one success, one transient
		"libp2p_resilience_dialer_connect_joined_total":          1,
		"libp2p_resilience_dialer_swarm_backoff_cleared_total":   1,
		"libp2p_resilience_dialer_reconnects_started_total":      1,
		"libp2p_resilience_dialer_reconnects_succeeded_total":    1,
		"libp2p_resilience_dialer_reconnect_rounds_failed_total": 1,
		"libp2p_resilience_dialer_retry_events_dropped_total":    1,
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, series := map[string]float64{}, map[string]int{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] += m.GetCounter().GetValue()
			series[f.GetName()]++
		}
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if n := series["libp2p_resilience_dialer_dials_total"]; n != 6 {
		t.Errorf("dials_total has %d series, want one per class (6)", n)
	}

	if allocs := testing.AllocsPerRun(100, func() {
		mt.DialAttempted(dialer.ClassPermanent)
		mt.ConnectJoined()
		mt.SwarmBackoffCleared()
		mt.ReconnectStarted()
		mt.ReconnectSucceeded()
		mt.ReconnectRoundFailed()
		mt.RetryEventDropped()
	}); allocs != 0 {
		t.Errorf("tracer allocates %v per event set, want 0", allocs)
	}
	if _, err := dialer.NewMetricsTracer(dialer.WithRegisterer(nil)); err == nil {
		t.Error("NewMetricsTracer(WithRegisterer(nil)) succeeded")
	}
}

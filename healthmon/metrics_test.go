package healthmon_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

func TestMetricsTracer(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	// A second tracer on the same registry reuses the collectors.
	tr2, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	tr.CheckCompleted(healthmon.Degraded, 3)
	tr2.CheckCompleted(healthmon.Healthy, 7)
	tr.StatusChanged(healthmon.StatusUnknown, healthmon.Unhealthy)
	tr.StatusChanged(healthmon.Unhealthy, healthmon.Healthy)
	tr.ProbeCompleted(false)
	tr.ProbeCompleted(false)
	tr.ProbeCompleted(true)
	tr.RecoveryStarted(healthmon.TriggerProbe)
	tr.RecoveryStarted(healthmon.TriggerConnection)
	tr.RecoveryStarted(healthmon.Trigger(99)) // ignored
	tr.RecoveryCompleted(true)

	want := map[string]float64{
		"libp2p_resilience_healthmon_checks_total":                                 2,
		"libp2p_resilience_healthmon_table_peers_connected":                        7,
		"libp2p_resilience_healthmon_probes_total{result=failed}":                  2,
		"libp2p_resilience_healthmon_probes_total{result=ok}":                      1,
		"libp2p_resilience_healthmon_recoveries_completed_total{result=failed}":    0,
		"libp2p_resilience_healthmon_recoveries_completed_total{result=ok}":        1,
		"libp2p_resilience_healthmon_recoveries_started_total{trigger=connection}": 1,
		"libp2p_resilience_healthmon_recoveries_started_total{trigger=probe}":      1,
		"libp2p_resilience_healthmon_status{status=degraded}":                      0,
		"libp2p_resilience_healthmon_status{status=healthy}":                       1,
		"libp2p_resilience_healthmon_status{status=unhealthy}":                     0,
		"libp2p_resilience_healthmon_status{status=unknown}":                       0,
		"libp2p_resilience_healthmon_status_changes_total{status=degraded}":        0,
		"libp2p_resilience_healthmon_status_changes_total{status=healthy}":         1,
		"libp2p_resilience_healthmon_status_changes_total{status=unhealthy}":       1,
		"libp2p_resilience_healthmon_status_changes_total{status=unknown}":         0,
	}
	got := gather(t, reg)
	if len(got) != len(want) {
		t.Errorf("gathered %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(nil)); err == nil {
		t.Fatal("NewMetricsTracer accepted a nil registerer")
	}
}

func TestMetricsTracerAllocatesNothing(t *testing.T) {
	tr, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		tr.CheckCompleted(healthmon.Healthy, 5)
		tr.StatusChanged(healthmon.Degraded, healthmon.Healthy)
		tr.ProbeCompleted(true)
		tr.RecoveryStarted(healthmon.TriggerProbe)
		tr.RecoveryCompleted(false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func TestStringers(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		healthmon.StatusUnknown:     "unknown",
		healthmon.Unhealthy:         "unhealthy",
		healthmon.Degraded:          "degraded",
		healthmon.Healthy:           "healthy",
		healthmon.Status(9):         "Status(9)",
		healthmon.TriggerProbe:      "probe",
		healthmon.TriggerConnection: "connection",
		healthmon.Trigger(0):        "Trigger(0)",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
}

// gather returns every series of reg as "name{label=value,...}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestMetricsTracerRejectsNilOption: a nil MetricsOption is an error naming
// it, as for every constructor of the module.
func TestMetricsTracerRejectsNilOption(t *testing.T) {
	_, err := healthmon.NewMetricsTracer(healthmon.WithRegisterer(prometheus.NewRegistry()), nil)
	if err == nil || !strings.Contains(err.Error(), "opts[1] is nil") {
		t.Fatalf("NewMetricsTracer with a nil option = %v, want an error naming opts[1]", err)
	}
}

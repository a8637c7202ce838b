package resilience_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestMetricsTracer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		tracer, err := resilience.NewMetricsTracer(resilience.WithRegisterer(reg))
		if err != nil {
			t.Fatal(err)
		}
		// A second tracer on the same registry shares the collectors.
		if _, err := resilience.NewMetricsTracer(resilience.WithRegisterer(reg)); err != nil {
			t.Fatal(err)
		}
		m := newManager(t, resilience.WithManagerMetrics(tracer), resilience.WithDefaultConfig(fastConfig(2)))
		calls := 0
		_, err = resilience.RetryTracked(t.Context(), m.Tracked("p"), func(context.Context) (int, error) {
			calls++
			return 0, errTest
		}, resilience.WithRetryMetrics(tracer))
		if err == nil {
			t.Fatal("expected exhaustion")
		}
		m.RecordSuccess("q")

		expect := map[string]float64{
			`libp2p_resilience_attempts_total{outcome="transient"}`: 2,
			`libp2p_resilience_retries_total`:                       1,
			`libp2p_resilience_retry_delay_seconds`:                 1,
			`libp2p_resilience_exhausted_total`:                     1,
			`libp2p_resilience_trackers{state="exhausted"}`:         1,
			`libp2p_resilience_trackers{state="connected"}`:         1,
			`libp2p_resilience_trackers{state="idle"}`:              0,
			`libp2p_resilience_trackers{state="connecting"}`:        0,
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, mt := range f.GetMetric() {
				name := f.GetName()
				for _, l := range mt.GetLabel() {
					name += `{` + l.GetName() + `="` + l.GetValue() + `"}`
				}
				switch {
				case mt.Counter != nil:
					got[name] = mt.Counter.GetValue()
				case mt.Gauge != nil:
					got[name] = mt.Gauge.GetValue()
				case mt.Histogram != nil:
					got[name] = float64(mt.Histogram.GetSampleCount())
				}
			}
		}
		for name, want := range expect {
			if got[name] != want {
				t.Errorf("%s = %v, want %v", name, got[name], want)
			}
		}
	})
}

func TestMetricsTracerAllocatesNothing(t *testing.T) {
	tracer, err := resilience.NewMetricsTracer(resilience.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		tracer.AttemptCompleted(resilience.OutcomeTransient)
		tracer.RetryScheduled(time.Second)
		tracer.RetriesExhausted()
		tracer.TrackerStateChanged(resilience.Connecting, resilience.Retrying)
		tracer.TrackerCreated()
		tracer.TrackerRemoved(resilience.Idle)
	})
	if allocs != 0 {
		t.Fatalf("tracer allocates %v per round", allocs)
	}
}

func TestMetricsTracerNilRegisterer(t *testing.T) {
	if _, err := resilience.NewMetricsTracer(resilience.WithRegisterer(nil)); err == nil {
		t.Fatal("nil registerer accepted")
	}
}

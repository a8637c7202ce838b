package resilience_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

var errTest = errors.New("test")

func newTracker(t *testing.T, cfg resilience.RetryConfig) *resilience.ConnectionTracker {
	t.Helper()
	tr, err := resilience.NewConnectionTracker("test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// The seed's test_delay_calculation_exponential_growth.
func TestDelayCalculationExponentialGrowth(t *testing.T) {
	tr := newTracker(t, resilience.DefaultRetryConfig())
	var delays []time.Duration
	for range 5 {
		tr.RecordFailure(errTest)
		delays = append(delays, tr.RetryDelay())
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] <= delays[i-1] {
			t.Fatalf("delays do not grow: %v", delays)
		}
	}
}

// The seed's test_max_attempts_enforcement.
func TestMaxAttemptsEnforcement(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 3
	tr := newTracker(t, cfg)
	for range 3 {
		tr.RecordFailure(errTest)
	}
	if tr.ShouldRetry() {
		t.Fatal("ShouldRetry after 3 of 3 attempts")
	}
	if tr.State != resilience.Exhausted {
		t.Fatalf("state %v, want exhausted", tr.State)
	}
}

// The seed's test_infinite_retry_mode.
func TestInfiniteRetryMode(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 0
	tr := newTracker(t, cfg)
	for i := range 100 {
		tr.RecordFailure(errTest)
		if !tr.ShouldRetry() {
			t.Fatalf("ShouldRetry false after %d failures in infinite mode", i+1)
		}
	}
}

// The seed's test_success_resets_state.
func TestSuccessResetsState(t *testing.T) {
	tr := newTracker(t, resilience.DefaultRetryConfig())
	tr.RecordFailure(errTest)
	tr.RecordFailure(errTest)
	if tr.ConsecutiveFailures != 2 {
		t.Fatalf("ConsecutiveFailures = %d, want 2", tr.ConsecutiveFailures)
	}
	tr.RecordSuccess()
	if tr.ConsecutiveFailures != 0 || tr.State != resilience.Connected || tr.LastError != nil {
		t.Fatalf("after success: %+v", tr)
	}
}

func TestResetOnSuccess(t *testing.T) {
	for _, reset := range []bool{true, false} {
		cfg := resilience.DefaultRetryConfig()
		cfg.ResetOnSuccess = reset
		tr := newTracker(t, cfg)
		tr.RecordAttempt()
		tr.RecordFailure(errTest)
		tr.RecordAttempt()
		tr.RecordSuccess()
		want := uint32(2)
		if reset {
			want = 0
		}
		if tr.AttemptCount != want {
			t.Errorf("ResetOnSuccess=%v: AttemptCount = %d, want %d", reset, tr.AttemptCount, want)
		}
		if tr.ConsecutiveFailures != 0 {
			t.Errorf("ResetOnSuccess=%v: ConsecutiveFailures = %d, want 0", reset, tr.ConsecutiveFailures)
		}
	}
}

// Every transition of the state machine.
func TestStateTransitions(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 2
	permanent := resilience.Permanent(errTest)
	tests := []struct {
		name  string
		steps func(*resilience.ConnectionTracker)
		want  resilience.ConnectionState
	}{
		{"new is idle", func(*resilience.ConnectionTracker) {}, resilience.Idle},
		{"idle→connecting", func(tr *resilience.ConnectionTracker) { tr.RecordAttempt() }, resilience.Connecting},
		{"connecting→connected", func(tr *resilience.ConnectionTracker) { tr.RecordAttempt(); tr.RecordSuccess() }, resilience.Connected},
		{"connecting→retrying", func(tr *resilience.ConnectionTracker) { tr.RecordAttempt(); tr.RecordFailure(errTest) }, resilience.Retrying},
		{"connecting→failed", func(tr *resilience.ConnectionTracker) { tr.RecordAttempt(); tr.RecordFailure(permanent) }, resilience.Failed},
		{"connecting→exhausted", func(tr *resilience.ConnectionTracker) {
			tr.RecordAttempt()
			tr.RecordFailure(errTest)
			tr.RecordAttempt()
			tr.RecordFailure(errTest)
		}, resilience.Exhausted},
		{"retrying→connecting", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(errTest); tr.RecordAttempt() }, resilience.Connecting},
		{"connected→idle on disconnect", func(tr *resilience.ConnectionTracker) { tr.RecordSuccess(); tr.RecordDisconnect() }, resilience.Idle},
		{"disconnect leaves retrying alone", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(errTest); tr.RecordDisconnect() }, resilience.Retrying},
		{"connecting→idle on cancel", func(tr *resilience.ConnectionTracker) { tr.RecordAttempt(); tr.RecordCanceled() }, resilience.Idle},
		{"connecting→idle on cancel after failures", func(tr *resilience.ConnectionTracker) {
			tr.RecordFailure(errTest)
			tr.RecordAttempt()
			tr.RecordCanceled()
		}, resilience.Idle},
		{"retrying→idle on cancel", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(errTest); tr.RecordCanceled() }, resilience.Idle},
		{"cancel leaves connected alone", func(tr *resilience.ConnectionTracker) { tr.RecordSuccess(); tr.RecordCanceled() }, resilience.Connected},
		{"idle→connected (inbound)", func(tr *resilience.ConnectionTracker) { tr.RecordSuccess() }, resilience.Connected},
		{"retrying→connected", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(errTest); tr.RecordSuccess() }, resilience.Connected},
		{"failed→connected", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(permanent); tr.RecordSuccess() }, resilience.Connected},
		{"exhausted→connected", func(tr *resilience.ConnectionTracker) {
			tr.RecordFailure(errTest)
			tr.RecordFailure(errTest)
			tr.RecordSuccess()
		}, resilience.Connected},
		{"failed→idle on reset", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(permanent); tr.Reset() }, resilience.Idle},
		{"exhausted→idle on reset", func(tr *resilience.ConnectionTracker) {
			tr.RecordFailure(errTest)
			tr.RecordFailure(errTest)
			tr.Reset()
		}, resilience.Idle},
		{"connected→idle on reset", func(tr *resilience.ConnectionTracker) { tr.RecordSuccess(); tr.Reset() }, resilience.Idle},
		{"retrying→idle on reset", func(tr *resilience.ConnectionTracker) { tr.RecordFailure(errTest); tr.Reset() }, resilience.Idle},
		{"connecting→idle on reset", func(tr *resilience.ConnectionTracker) { tr.RecordAttempt(); tr.Reset() }, resilience.Idle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t, cfg)
			tt.steps(tr)
			if tr.State != tt.want {
				t.Fatalf("state %v, want %v", tr.State, tt.want)
			}
		})
	}
}

func TestFailedAndExhaustedDoNotRetry(t *testing.T) {
	tr := newTracker(t, resilience.DefaultRetryConfig())
	tr.RecordFailure(resilience.Permanent(errTest))
	if tr.ShouldRetry() || tr.AttemptCount != 1 {
		t.Fatalf("permanent failure: ShouldRetry=%v attempts=%d", tr.ShouldRetry(), tr.AttemptCount)
	}
	tr.Reset()
	if !tr.ShouldRetry() || tr.AttemptCount != 0 || tr.ConsecutiveFailures != 0 || tr.LastError != nil {
		t.Fatalf("after reset: %+v", tr)
	}
	if tr.Config != resilience.DefaultRetryConfig() || tr.ConnectionID != "test" {
		t.Fatal("reset lost config or id")
	}
}

func TestTrackerTimestamps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, resilience.DefaultRetryConfig())
		start := time.Now()
		tr.RecordAttempt()
		time.Sleep(time.Second)
		tr.RecordSuccess()
		if !tr.LastAttempt.Equal(start) || !tr.LastSuccess.Equal(start.Add(time.Second)) {
			t.Fatalf("LastAttempt %v LastSuccess %v, start %v", tr.LastAttempt, tr.LastSuccess, start)
		}
	})
}

func TestStateStrings(t *testing.T) {
	want := []string{"idle", "connecting", "connected", "retrying", "failed", "exhausted"}
	for i, w := range want {
		if got := resilience.ConnectionState(i).String(); got != w {
			t.Errorf("state %d = %q, want %q", i, got, w)
		}
	}
	if got := resilience.ConnectionState(42).String(); got != "ConnectionState(42)" {
		t.Errorf("unknown state = %q", got)
	}
}

// Two overlapping attempts (two probes of one peer) count as two, not three.
func TestOverlappingAttemptsCountedOnce(t *testing.T) {
	tr := newTracker(t, resilience.DefaultRetryConfig())
	tr.RecordAttempt()
	tr.RecordAttempt()
	tr.RecordFailure(errTest)
	tr.RecordFailure(errTest)
	if tr.AttemptCount != 2 || tr.ConsecutiveFailures != 2 {
		t.Fatalf("attempts %d failures %d, want 2 and 2", tr.AttemptCount, tr.ConsecutiveFailures)
	}
	// One of two overlapping attempts is abandoned: the other is still in flight.
	tr.Reset()
	tr.RecordAttempt()
	tr.RecordAttempt()
	tr.RecordCanceled()
	if tr.State != resilience.Connecting {
		t.Fatalf("state %v with an attempt still in flight", tr.State)
	}
	tr.RecordCanceled()
	if tr.State != resilience.Idle {
		t.Fatalf("state %v after both were abandoned", tr.State)
	}
}

// An inbound connection (a success nobody dialled) arriving while our own dial is
// in flight: that dial's later failure is stale and must not use up an attempt.
func TestSuccessOvertakesAttemptInFlight(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 2
	cfg.ResetOnSuccess = false
	tr := newTracker(t, cfg)
	tr.RecordAttempt()
	tr.RecordSuccess() // the connection event
	tr.RecordFailure(errTest)
	if tr.State != resilience.Connected || tr.AttemptCount != 1 || tr.ConsecutiveFailures != 0 {
		t.Fatalf("stale failure changed the tracker: %+v", tr)
	}
	// After a disconnect, failures count again.
	tr.RecordDisconnect()
	tr.RecordFailure(errTest)
	if tr.State != resilience.Exhausted || tr.AttemptCount != 2 {
		t.Fatalf("after disconnect: %+v", tr)
	}
}

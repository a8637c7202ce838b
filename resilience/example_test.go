package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func ExampleRetry() {
	cfg := resilience.DefaultRetryConfig()
	cfg.InitialDelay = time.Millisecond // keep the example fast
	cfg.MaxDelay = 10 * time.Millisecond

	calls := 0
	v, err := resilience.Retry(context.Background(), cfg, func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("connection refused")
		}
		return "connected", nil
	}, resilience.OnRetry(func(attempt uint32, err error, _ time.Duration) {
		fmt.Printf("attempt %d failed: %v\n", attempt, err)
	}))
	fmt.Println(v, err)
	// Output:
	// attempt 1 failed: connection refused
	// attempt 2 failed: connection refused
	// connected <nil>
}

func ExampleRetry_permanent() {
	_, err := resilience.Retry(context.Background(), resilience.ForDHTPeer(), func(ctx context.Context) (int, error) {
		return 0, resilience.Permanent(errors.New("peer id mismatch"))
	})
	fmt.Println(err, resilience.IsPermanent(err))
	// Output: peer id mismatch true
}

func ExampleRetryConfig_BaseDelay() {
	cfg := resilience.DefaultRetryConfig()
	for n := uint32(1); n <= 8; n++ {
		fmt.Print(cfg.BaseDelay(n), " ")
	}
	fmt.Println()
	// Output: 500ms 1s 2s 4s 8s 16s 30s 30s
}

func ExampleConnectionManager() {
	m, err := resilience.NewConnectionManager(resilience.WithDefaultConfig(resilience.ForDHTPeer()))
	if err != nil {
		panic(err)
	}
	// Connection events update trackers in place; concurrent callers lose nothing.
	m.RecordSuccess("QmPeerA")
	if delay, retry := m.RecordFailure("QmPeerB", errors.New("timeout")); retry {
		fmt.Println("retry QmPeerB in about", delay.Round(time.Second))
	}
	st := m.Stats()
	fmt.Printf("%d connected, %d retrying, success rate %.0f%%\n", st.Connected, st.Retrying, st.SuccessRate*100)
	// Output:
	// retry QmPeerB in about 1s
	// 1 connected, 1 retrying, success rate 50%
}

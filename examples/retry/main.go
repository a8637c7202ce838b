// Command retry shows resilience.Retry at work on 127.0.0.1: it dials a TCP port
// that comes up only after a few seconds and prints every retry, then shows the
// delay table of each profile.
//
//	go run ./examples/retry
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "retry:", err)
		os.Exit(1)
	}
}

func run() error {
	// Reserve a port, then free it: the "server" comes back on it 2.5s later.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverUp := make(chan net.Listener, 1)
	go func() {
		time.Sleep(2500 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			serverUp <- nil
			return
		}
		fmt.Printf("%6.2fs  server is back on %s\n", time.Since(start).Seconds(), addr)
		serverUp <- l
	}()
	defer func() {
		if l := <-serverUp; l != nil {
			l.Close()
		}
	}()

	cfg := resilience.DefaultRetryConfig() // 5 attempts, 500ms doubling, ±5% jitter
	fmt.Printf("dialling %s with %d attempts, delays from %v\n", addr, cfg.MaxAttempts, cfg.InitialDelay)
	conn, err := resilience.Retry(ctx, cfg, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, resilience.OnRetry(func(attempt uint32, err error, delay time.Duration) {
		fmt.Printf("%6.2fs  attempt %d failed (%v); next in %v\n", time.Since(start).Seconds(), attempt, err, delay.Round(time.Millisecond))
	}))
	if err != nil {
		return err
	}
	fmt.Printf("%6.2fs  connected to %s\n", time.Since(start).Seconds(), conn.RemoteAddr())
	conn.Close()

	fmt.Println("\nbase delay before each retry, per profile:")
	for _, p := range []struct {
		name string
		cfg  resilience.RetryConfig
	}{
		{"default", resilience.DefaultRetryConfig()},
		{"webrtc", resilience.ForWebRTC()},
		{"dht-bootstrap", resilience.ForDHTBootstrap()},
		{"dht-peer", resilience.ForDHTPeer()},
	} {
		fmt.Printf("  %-14s", p.name)
		for n := uint32(1); n < p.cfg.MaxAttempts; n++ {
			fmt.Printf(" %6v", p.cfg.BaseDelay(n))
		}
		fmt.Println()
	}
	return nil
}

var start = time.Now()

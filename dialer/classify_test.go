package dialer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// TestClassifyRealErrors classifies errors produced by real hosts on 127.0.0.1,
// dialed through the wrapped host (no retries, no backoff clearing).
func TestClassifyRealErrors(t *testing.T) {
	h, gater := newHost(t)
	raw := h.Unwrap()
	up := testnet.NewNode(t)      // running
	down := testnet.NewNode(t)    // stopped below: connection refused
	blocked := testnet.NewNode(t) // our gater refuses it
	down.Stop()
	gater.Block(blocked.ID())

	dial := func(pi peer.AddrInfo) error {
		return raw.Connect(ctxTimeout(t), pi)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name  string
		err   func() error
		want  dialer.ErrorClass
		is    error // also errors.Is(err, is), when set
		check func(error) bool
	}{
		{name: "dial to self", want: dialer.ClassPermanent, is: swarm.ErrDialToSelf,
			err: func() error { return dial(peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}) }},
		{name: "no addresses", want: dialer.ClassPermanent, is: swarm.ErrNoAddresses,
			err: func() error { return dial(peer.AddrInfo{ID: randomID(t)}) }},
		{name: "no transport for the only address", want: dialer.ClassPermanent, is: swarm.ErrNoTransport,
			err: func() error { return dial(peer.AddrInfo{ID: randomID(t), Addrs: []ma.Multiaddr{quicAddr(t)}}) }},
		{name: "our gater refuses", want: dialer.ClassPermanent, is: swarm.ErrGaterDisallowedConnection,
			err: func() error { return dial(blocked.AddrInfo()) }},
		{name: "peer ID mismatch", want: dialer.ClassPermanent,
			err: func() error { return dial(peer.AddrInfo{ID: randomID(t), Addrs: up.Addrs()}) },
			check: func(err error) bool {
				var m sec.ErrPeerIDMismatch
				return errors.As(err, &m) && m.Actual == up.ID()
			}},
		{name: "connection refused", want: dialer.ClassTransient,
			err: func() error { return dial(down.AddrInfo()) }},
		{name: "swarm dial backoff after a failure", want: dialer.ClassDialBackoff, is: swarm.ErrDialBackoff,
			err: func() error { return dial(down.AddrInfo()) }}, // right after the previous case
		{name: "refused address plus address without transport", want: dialer.ClassTransient,
			err: func() error {
				raw.Network().(*swarm.Swarm).Backoff().Clear(down.ID())
				return dial(peer.AddrInfo{ID: down.ID(), Addrs: append(down.Addrs(), quicAddr(t))})
			}},
		{name: "context canceled", want: dialer.ClassCanceled, is: context.Canceled,
			err: func() error { return raw.Connect(canceled, down.AddrInfo()) }},
		{name: "marked permanent", want: dialer.ClassPermanent,
			err: func() error { return resilience.Permanent(errors.New("x")) }},
		{name: "nil", want: dialer.ClassNone, err: func() error { return nil }},
		{name: "success", want: dialer.ClassNone, err: func() error { return dial(up.AddrInfo()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if got := dialer.Classify(err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", err, got, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not match %v: not the case under test", err, tc.is)
			}
			if tc.check != nil && !tc.check(err) {
				t.Fatalf("error %v is not the case under test", err)
			}
			// Wrapping keeps the class.
			if got := dialer.Classify(fmt.Errorf("wrapped: %w", err)); err != nil && got != tc.want {
				t.Fatalf("Classify(wrapped) = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestClassifyDialErrorShapes covers DialError shapes that are hard to produce
// on demand: the classification must look at every address, not at the first
// sentinel errors.Is finds in the tree.
func TestClassifyDialErrorShapes(t *testing.T) {
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	te := func(err error) swarm.TransportError { return swarm.TransportError{Address: addr, Cause: err} }
	refused := errors.New("connect: connection refused")
	for _, tc := range []struct {
		name string
		err  *swarm.DialError
		want dialer.ErrorClass
	}{
		{"gater on one address, refused on another",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(swarm.ErrGaterDisallowedConnection), te(refused)}},
			dialer.ClassTransient},
		{"all addresses permanent",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(swarm.ErrGaterDisallowedConnection), te(swarm.ErrNoTransport)}},
			dialer.ClassPermanent},
		{"backoff and permanent",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(swarm.ErrDialBackoff), te(swarm.ErrDialToSelf)}},
			dialer.ClassDialBackoff},
		{"backoff and refused",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(swarm.ErrDialBackoff), te(refused)}},
			dialer.ClassTransient},
		{"per-address timeout is transient",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(context.DeadlineExceeded)}},
			dialer.ClassTransient},
		{"no good addresses because of the black-hole detector",
			&swarm.DialError{Cause: swarm.ErrNoGoodAddresses, DialErrors: []swarm.TransportError{te(swarm.ErrDialRefusedBlackHole)}},
			dialer.ClassTransient},
		{"no good addresses, nothing recorded",
			&swarm.DialError{Cause: swarm.ErrNoGoodAddresses},
			dialer.ClassPermanent},
		{"skipped errors are unknown",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(swarm.ErrNoTransport)}, Skipped: 3},
			dialer.ClassTransient},
		{"peer-level gater",
			&swarm.DialError{Cause: swarm.ErrGaterDisallowedConnection},
			dialer.ClassPermanent},
		{"peer ID mismatch flattened to text",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed, DialErrors: []swarm.TransportError{te(errors.New("failed to negotiate security protocol: peer id mismatch: expected a, but remote key matches b"))}},
			dialer.ClassPermanent},
		{"empty DialError",
			&swarm.DialError{Cause: swarm.ErrAllDialsFailed},
			dialer.ClassTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dialer.Classify(fmt.Errorf("failed to dial: %w", tc.err)); got != tc.want {
				t.Fatalf("Classify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestErrorClassString(t *testing.T) {
	for c, want := range map[dialer.ErrorClass]string{
		dialer.ClassNone: "none", dialer.ClassTransient: "transient", dialer.ClassPermanent: "permanent",
		dialer.ClassDialBackoff: "dial_backoff", dialer.ClassCanceled: "canceled", dialer.ErrorClass(200): "unknown",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", c, got, want)
		}
	}
}

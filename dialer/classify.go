package dialer

import (
	"context"
	"errors"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// ErrorClass says what a dial error means for the retry policy.
type ErrorClass uint8

// Error classes, as returned by Classify.
const (
	// ClassNone is the class of a nil error: the dial succeeded.
	ClassNone ErrorClass = iota
	// ClassTransient: the peer may be reachable later (connection refused, reset,
	// timeouts, handshake failures, ...). Retried with backoff.
	ClassTransient
	// ClassPermanent: no retry can help until something changes (dial to self,
	// refused by our own connection gater, no addresses / no good addresses, no
	// transport for any address, peer ID mismatch, swarm closed). The tracker
	// goes Failed after this one attempt.
	ClassPermanent
	// ClassDialBackoff: the swarm refused to dial because the peer's addresses
	// are in its dial backoff (swarm.ErrDialBackoff). Not a failure of the peer.
	ClassDialBackoff
	// ClassCanceled: a context ended (context.Canceled or DeadlineExceeded). Not
	// a failure of the peer when it is the caller's context; a deadline inside
	// libp2p (the swarm's dial timeout) while the caller's context is live is
	// treated as transient by Host.
	ClassCanceled
	// ClassRateLimited: the resource manager's connection rate limit refused
	// the dial ("rate limit exceeded") before anything reached the peer. Not a
	// failure of the peer: the Host waits for the limit and dials again.
	ClassRateLimited
	classCount
)

var classNames = [...]string{"none", "transient", "permanent", "dial_backoff", "canceled", "rate_limited"}

// String returns the class name, also used as a metrics label value.
func (c ErrorClass) String() string {
	if c < classCount {
		return classNames[c]
	}
	return "unknown"
}

// Classify sorts an error returned by a libp2p dial (host.Connect,
// Network.DialPeer, NewStream) into an ErrorClass. It inspects the
// *swarm.DialError structure instead of matching any sentinel anywhere in the
// chain: a DialError is permanent only if its cause is, or if every address
// failed for a permanent reason, and it is ClassDialBackoff only if every address
// that did not fail permanently was skipped because of the swarm's backoff. One
// address refused with "connection refused" makes the whole error transient.
//
// Permanent causes: swarm.ErrDialToSelf, swarm.ErrGaterDisallowedConnection (our
// own gater), swarm.ErrNoAddresses, swarm.ErrNoGoodAddresses,
// swarm.ErrNoTransport, sec.ErrPeerIDMismatch (or its text, "peer id mismatch",
// when a transport flattened it), the upgrader's "gater rejected connection",
// the swarm's "unexpected peer", swarm.ErrSwarmClosed, peer.ErrEmptyPeerID, and
// anything already marked with resilience.Permanent. swarm.ErrDialRefusedBlackHole
// is transient: the black-hole detector re-probes.
//
// A remote peer whose gater refuses us cannot be told apart at dial time: with
// TCP and Noise, Connect succeeds and the remote closes the connection right
// after (KeepConnected damps the resulting reconnect flapping).
//
// Classify is a pure function, safe for concurrent use.
func Classify(err error) ErrorClass {
	if err == nil {
		return ClassNone
	}
	if resilience.IsPermanent(err) {
		return ClassPermanent
	}
	var de *swarm.DialError
	if errors.As(err, &de) {
		return classifyDialError(de)
	}
	return classifyCause(err)
}

// classifyDialError classifies a swarm dial error by its cause and per-address errors.
func classifyDialError(de *swarm.DialError) ErrorClass {
	if de.Cause != nil && !errors.Is(de.Cause, swarm.ErrAllDialsFailed) && !errors.Is(de.Cause, swarm.ErrNoGoodAddresses) {
		// ErrGaterDisallowedConnection (peer-level gate), ErrNoAddresses, or
		// something this version of the swarm did not have.
		return classifyCause(de.Cause)
	}
	if de.Skipped > 0 {
		return ClassTransient // errors we cannot see: assume one of them was transient
	}
	backoff, limited := false, false
	for i := range de.DialErrors {
		switch classifyCause(de.DialErrors[i].Cause) {
		case ClassPermanent:
		case ClassDialBackoff:
			backoff = true
		case ClassRateLimited:
			limited = true
		default: // transient, or a per-address dial timeout
			return ClassTransient
		}
	}
	switch {
	case limited:
		return ClassRateLimited // no address was really tried but refused ones
	case backoff:
		return ClassDialBackoff
	case len(de.DialErrors) == 0 && !errors.Is(de.Cause, swarm.ErrNoGoodAddresses):
		return ClassTransient // an empty DialError says nothing; do not give up on it
	default:
		// Every address failed permanently, or no good address was left at all.
		return ClassPermanent
	}
}

// classifyCause classifies an error that is not a *swarm.DialError: a top-level
// error or the cause of one address's TransportError.
func classifyCause(err error) ErrorClass {
	switch {
	case err == nil:
		return ClassNone
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ClassCanceled
	case errors.Is(err, swarm.ErrDialBackoff):
		return ClassDialBackoff
	case strings.Contains(err.Error(), rateLimitExceeded):
		return ClassRateLimited
	case isPermanentCause(err):
		return ClassPermanent
	default:
		return ClassTransient
	}
}

// rateLimitExceeded is the error text of go-libp2p's resource manager when its
// connection rate limit refuses a connection (it has no sentinel).
const rateLimitExceeded = "rate limit exceeded"

var permanentSentinels = [...]error{
	swarm.ErrDialToSelf,
	swarm.ErrGaterDisallowedConnection,
	swarm.ErrNoAddresses,
	swarm.ErrNoGoodAddresses,
	swarm.ErrNoTransport,
	swarm.ErrSwarmClosed,
	peer.ErrEmptyPeerID,
}

func isPermanentCause(err error) bool {
	for _, s := range permanentSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	var mismatch sec.ErrPeerIDMismatch
	if errors.As(err, &mismatch) {
		return true
	}
	var mismatchPtr *sec.ErrPeerIDMismatch
	if errors.As(err, &mismatchPtr) {
		return true
	}
	// Errors that libp2p builds with fmt.Errorf and no sentinel.
	msg := err.Error()
	return strings.Contains(msg, "peer id mismatch") || // sec.ErrPeerIDMismatch flattened with %s/%v
		strings.Contains(msg, "gater rejected connection") || // upgrader: our gater's InterceptSecured
		msg == "unexpected peer" || strings.HasSuffix(msg, ": unexpected peer") // swarm.dialPeer's late ID check
}

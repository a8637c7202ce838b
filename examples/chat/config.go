package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// Defaults of the command-line flags.
const (
	defaultListen       = "/ip4/127.0.0.1/tcp/0"
	defaultRetryInitial = time.Second
	defaultRetryMax     = 10 * time.Second
	defaultQuitWait     = 5 * time.Second
	maxRendezvousBytes  = 200
)

// options are the parsed command-line flags.
type options struct {
	listen       []ma.Multiaddr
	partner      *peer.AddrInfo
	identity     string
	rendezvous   string
	bootstrap    []peer.AddrInfo
	retry        resilience.RetryConfig
	quitWait     time.Duration
	closeTimeout time.Duration
	// allowNewPartner: --allow-new-partner (see chatOptions.allowNewPartner).
	allowNewPartner bool
}

// usageError is a bad command line: main prints it as one line and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

const usageText = `Usage: chat [flags]

A two-party chat over libp2p that survives its partner's restarts: messages
typed while the partner is away are queued and delivered in order, exactly once,
when it is back.

  chat --listen /ip4/127.0.0.1/tcp/4001 --identity a.key     # prints its address
  chat --peer /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...         # connects to it
  chat --rendezvous room42 --bootstrap /ip4/.../p2p/...      # meet through a DHT

Type a line to send it. Commands: /quit (or Ctrl-D), /status, /help; a line
starting with // sends a literal /.

Flags:
`

// newFlagSet defines the flags on a fresh FlagSet that writes nothing.
func newFlagSet() (*flag.FlagSet, *rawFlags) {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r := &rawFlags{}
	fs.Func("listen", "listen `multiaddr` (TCP or /udp/PORT/webrtc-direct; repeatable; default "+defaultListen+")", func(s string) error {
		r.listen = append(r.listen, s)
		return nil
	})
	fs.StringVar(&r.peer, "peer", "", "partner `multiaddr` with /p2p/<peer id> to connect to and keep connected")
	fs.StringVar(&r.identity, "identity", "", "private key `file`: loaded if it exists, else created (mode 0600); default: a new key every run")
	fs.StringVar(&r.rendezvous, "rendezvous", "", "find the partner through the DHT under this `name` (needs --bootstrap)")
	fs.Func("bootstrap", "DHT bootstrap peer `multiaddr` with /p2p/ (repeatable)", func(s string) error {
		r.bootstrap = append(r.bootstrap, s)
		return nil
	})
	fs.DurationVar(&r.retryInitial, "retry-initial", defaultRetryInitial, "first reconnect delay; doubles per attempt")
	fs.DurationVar(&r.retryMax, "retry-max", defaultRetryMax, "longest reconnect delay")
	fs.DurationVar(&r.quitWait, "quit-wait", defaultQuitWait, "on /quit, how long to wait for the partner to acknowledge sent messages")
	fs.DurationVar(&r.closeTimeout, "close-timeout", defaultCloseTimeout, "on exit, how long to wait for the partner's goodbye on each stream")
	fs.BoolVar(&r.allowNewPartner, "allow-new-partner", false, "without --peer: let another peer take over the chat while the partner is disconnected (default: the first peer that chats stays the only partner; a restarted partner needs the same --identity)")
	return fs, r
}

type rawFlags struct {
	listen, bootstrap                              []string
	peer, identity, rendezvous                     string
	retryInitial, retryMax, quitWait, closeTimeout time.Duration
	allowNewPartner                                bool
}

// printUsage writes the usage text and the flag defaults to w.
func printUsage(w io.Writer) {
	fs, _ := newFlagSet()
	fs.SetOutput(w)
	fmt.Fprint(w, usageText)
	fs.PrintDefaults()
}

// parseFlags parses args. It returns flag.ErrHelp for -h/--help and a
// *usageError naming the flag for anything wrong.
func parseFlags(args []string) (options, error) {
	fs, r := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, err
		}
		return options{}, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return options{}, usagef("unexpected argument %q (flags only)", fs.Arg(0))
	}
	var o options
	if len(r.listen) == 0 {
		r.listen = []string{defaultListen}
	}
	for _, s := range r.listen {
		a, err := parseListen(s)
		if err != nil {
			return options{}, err
		}
		o.listen = append(o.listen, a)
	}
	if r.peer != "" {
		pi, err := parsePeer(r.peer)
		if err != nil {
			return options{}, err
		}
		o.partner = &pi
	}
	o.identity = r.identity
	o.rendezvous = r.rendezvous
	switch {
	case r.rendezvous != "" && r.peer != "":
		return options{}, usagef("--peer and --rendezvous exclude each other: give an address or a rendezvous name")
	case r.rendezvous != "" && len(r.bootstrap) == 0:
		return options{}, usagef("--rendezvous needs at least one --bootstrap peer")
	case r.rendezvous == "" && len(r.bootstrap) > 0:
		return options{}, usagef("--bootstrap is only used with --rendezvous")
	case len(r.rendezvous) > maxRendezvousBytes:
		return options{}, usagef("--rendezvous: name is %d bytes, max %d", len(r.rendezvous), maxRendezvousBytes)
	case r.rendezvous != "" && strings.TrimSpace(r.rendezvous) != r.rendezvous:
		return options{}, usagef("--rendezvous %q: leading or trailing spaces", r.rendezvous)
	}
	if len(r.bootstrap) > 0 {
		boot, err := bootstrap.ParseAddrs(r.bootstrap)
		if err != nil {
			return options{}, usagef("--bootstrap: %v", err)
		}
		o.bootstrap = boot
	}
	switch {
	case r.retryInitial <= 0:
		return options{}, usagef("--retry-initial %v: must be > 0", r.retryInitial)
	case r.retryMax < r.retryInitial:
		return options{}, usagef("--retry-max %v: must be >= --retry-initial (%v)", r.retryMax, r.retryInitial)
	case r.quitWait < 0:
		return options{}, usagef("--quit-wait %v: must be >= 0", r.quitWait)
	case r.closeTimeout <= 0:
		return options{}, usagef("--close-timeout %v: must be > 0", r.closeTimeout)
	}
	o.retry = partnerRetry(r.retryInitial, r.retryMax)
	o.quitWait = r.quitWait
	o.closeTimeout = r.closeTimeout
	o.allowNewPartner = r.allowNewPartner
	return o, nil
}

// partnerRetry is the partner's reconnect profile: unlimited attempts (the
// dialer keeps a kept peer's rounds going anyway), delays from initial
// doubling to max with ±5% jitter.
func partnerRetry(initial, maxDelay time.Duration) resilience.RetryConfig {
	return resilience.RetryConfig{
		MaxAttempts:       0,
		InitialDelay:      initial,
		MaxDelay:          maxDelay,
		BackoffMultiplier: 2,
		JitterFactor:      0.1,
		ResetOnSuccess:    true,
	}
}

// parseListen accepts a TCP multiaddr without /p2p.
func parseListen(s string) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(strings.TrimSpace(s))
	if err != nil {
		return nil, usagef("--listen %q: not a multiaddr: %v", s, err)
	}
	if !tcpOrWebRTC(a) {
		return nil, usagef("--listen %q: not a TCP address or a /webrtc-direct one (this chat speaks those only), e.g. /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/webrtc-direct", s)
	}
	if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
		return nil, usagef("--listen %q: a listen address has no /p2p part", s)
	}
	return a, nil
}

// parsePeer accepts a multiaddr that ends in /p2p/<peer id> and has a TCP
// (or DNS + TCP) part to dial.
func parsePeer(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(strings.TrimSpace(s))
	if err != nil {
		if _, idErr := peer.Decode(strings.TrimSpace(s)); idErr == nil {
			return peer.AddrInfo{}, usagef("--peer %q: a bare peer id cannot be dialled; give the full address, e.g. /ip4/192.0.2.1/tcp/4001/p2p/%s", s, strings.TrimSpace(s))
		}
		return peer.AddrInfo{}, usagef("--peer %q: not a multiaddr: %v", s, err)
	}
	transport, id := peer.SplitAddr(a)
	if id == "" {
		return peer.AddrInfo{}, usagef("--peer %q: no /p2p/<peer id> at the end", s)
	}
	if len(transport) == 0 {
		return peer.AddrInfo{}, usagef("--peer %q: no address before /p2p (a bare peer id cannot be dialled)", s)
	}
	if !tcpOrWebRTC(transport) {
		return peer.AddrInfo{}, usagef("--peer %q: not a TCP address or a /webrtc-direct one (this chat speaks those only)", s)
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{transport}}, nil
}

// tcpOrWebRTC reports whether a is a TCP or a WebRTC-direct address.
func tcpOrWebRTC(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		return true
	}
	_, err := a.ValueForProtocol(ma.P_WEBRTC_DIRECT)
	return err == nil
}

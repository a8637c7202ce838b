// Command chat is a two-party chat over libp2p that survives its partner's
// restarts without losing a message.
//
//	go run ./examples/chat --listen /ip4/127.0.0.1/tcp/4001 --identity a.key
//	go run ./examples/chat --peer /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...
//
// The first prints its full address (with /p2p/); the second connects to it.
// Lines typed in either are shown by the other with the sender's short peer
// id and the time they were typed. /quit or Ctrl-D leaves.
//
// When the partner goes away, the peer that knows its address reconnects with
// the dialer package's keep-alive (dialer.Host.KeepConnected) and shows each
// retry ("reconnecting (attempt 2, next in 1.9s)"). Lines typed meanwhile are
// shown as pending and delivered, in order and exactly once, when the partner
// is back: every message carries the sender's session id and a sequence
// number, the receiver acknowledges them cumulatively and drops what it has
// already shown, and the sender resends whatever is unacknowledged on every
// new stream. A restarted peer (same key thanks to --identity, new session)
// starts a new sequence that the partner accepts.
//
// The partner is the --peer, or else the first peer that chats; any other peer
// is refused, also while the partner is away, so that a stranger cannot take
// the chat over (and read what was queued for the partner). A partner without
// --identity comes back under a new peer id and is refused too, unless the
// waiting peer runs with --allow-new-partner, which lets the next peer take
// over a disconnected partner adopted that way (never a --peer).
//
// With --rendezvous NAME --bootstrap ADDR the two peers find each other
// through a Kademlia DHT (go-libp2p-kad-dht) instead of an address.
//
// Limits: messages live in memory. A peer that is killed (rather than quit)
// loses its unacknowledged messages, and may show a message again after a
// restart if it was killed between showing it and the acknowledgement
// reaching the sender. On /quit, Ctrl-D, SIGINT or SIGTERM a peer waits up to
// --quit-wait for its messages to be acknowledged and says goodbye on each
// stream so that acknowledgements in flight arrive.
//
// Exit status: 0 after /quit, Ctrl-D or a signal; 2 for a bad command line; 1
// for anything else that stops it (identity file, busy port).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/chiral-network/go-libp2p-resilience/internal/identity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit status. When ctx ends (a
// signal) it leaves like /quit; the goroutine reading stdin then stays
// blocked until the process exits.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chat: %v (see chat --help)\n", err)
		return 2
	}
	key, created, err := loadIdentity(opts.identity)
	if err != nil {
		fmt.Fprintf(stderr, "chat: %v\n", err)
		return 1
	}
	u := newUI(stdout)
	if created {
		u.printf("created identity file %s", opts.identity)
	}
	if opts.partner != nil {
		self, err := identity.PeerID(key)
		if err != nil {
			fmt.Fprintf(stderr, "chat: %v\n", err)
			return 1
		}
		if opts.partner.ID == self {
			fmt.Fprintf(stderr, "chat: --peer %s is this peer's own id (same --identity file?) (see chat --help)\n", self)
			return 2
		}
	}
	a, err := newApp(appConfig{
		key:             key,
		listen:          opts.listen,
		partner:         opts.partner,
		rendezvous:      opts.rendezvous,
		bootstrap:       opts.bootstrap,
		retry:           opts.retry,
		emit:            u.event,
		closeTimeout:    opts.closeTimeout,
		allowNewPartner: opts.allowNewPartner,
	})
	if err != nil {
		fmt.Fprintf(stderr, "chat: %v\n", err)
		return 1
	}
	u.printf("peer id %s (%s)", a.h.ID(), shortID(a.h.ID()))
	for _, addr := range a.fullAddrs() {
		u.printf("listening on %s", addr)
	}
	switch {
	case opts.partner != nil:
		u.printf("connecting to %s", opts.partner.ID)
	case opts.rendezvous == "":
		u.printf("waiting for a partner (run: chat --peer <one of the addresses above>); /help for commands")
	}
	if err := a.start(); err != nil {
		a.close()
		fmt.Fprintf(stderr, "chat: %v\n", err)
		return 1
	}

	inputDone := make(chan error, 1)
	go func() { inputDone <- runInput(stdin, a.chat, u) }()
	select {
	case err := <-inputDone:
		if err != nil {
			u.printf("reading input: %v", err)
		}
	case <-ctx.Done():
		u.printf("interrupted")
	}
	leave(a, u, opts.quitWait)
	return 0
}

// leave waits up to quitWait for unacknowledged messages while the partner
// is connected, reports what stays unconfirmed and closes the app.
func leave(a *app, u *ui, quitWait time.Duration) {
	if st := a.chat.status(); st.Unacked > 0 && st.Connected && quitWait > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), quitWait)
		_ = a.chat.waitDelivered(ctx)
		cancel()
	}
	a.close()
	if n := len(a.chat.out.unacked()); n > 0 {
		u.printf("%d message(s) not confirmed delivered", n)
	}
	u.printf("bye")
}

// loadIdentity loads or creates (mode 0600, atomically) the --identity key
// file, or makes an ephemeral key without one. created reports a new file.
func loadIdentity(path string) (key crypto.PrivKey, created bool, err error) {
	if path == "" {
		key, err = identity.Generate()
		return key, false, err
	}
	_, statErr := os.Lstat(path)
	key, err = identity.LoadOrCreate(path)
	return key, err == nil && errors.Is(statErr, fs.ErrNotExist), err
}

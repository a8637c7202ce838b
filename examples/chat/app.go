package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// appConfig is everything a chat peer needs; main fills it from the flags.
type appConfig struct {
	key          crypto.PrivKey
	listen       []ma.Multiaddr
	partner      *peer.AddrInfo // --peer; nil: wait for one, or use the DHT
	rendezvous   string         // --rendezvous; "" = no DHT
	bootstrap    []peer.AddrInfo
	retry        resilience.RetryConfig // reconnect profile of the partner
	emit         func(chatEvent)
	closeTimeout time.Duration    // 0: defaultCloseTimeout
	dhtMode      dht.ModeOpt      // default dht.ModeAuto
	reAdvertise  time.Duration    // 0: defaultReAdvertise
	now          func() time.Time // nil: time.Now
	holdAcks     func() bool      // test hook, see chatOptions
	// allowNewPartner: see chatOptions.allowNewPartner (--allow-new-partner).
	allowNewPartner bool
}

// app is one running chat peer: a libp2p host wrapped by the dialer, the chat
// session and, with a rendezvous, a DHT (the host made resilient by
// resilientdht.New). Safe for concurrent use.
type app struct {
	cfg  appConfig
	h    *dialer.Host
	chat *chat
	node *resilientdht.Node // nil without rendezvous
	dht  *dht.IpfsDHT       // nil without rendezvous
	ctx  context.Context

	cancel    context.CancelFunc
	wg        sync.WaitGroup // rendezvous goroutines
	closeOnce sync.Once
}

// startApp is newApp followed by start.
func startApp(cfg appConfig) (*app, error) {
	a, err := newApp(cfg)
	if err != nil {
		return nil, err
	}
	if err := a.start(); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// newApp starts a chat peer's host and chat, which accepts a partner from
// now on. The host listens only on cfg.listen and speaks TCP and
// WebRTC-direct; the partner is reconnected with cfg.retry whenever its
// connection is lost. With a rendezvous, the host gets a DHT through
// resilientdht.New (bootstrap, health monitor and recovery included).
func newApp(cfg appConfig) (*app, error) {
	if cfg.key == nil {
		return nil, errors.New("start: no identity key")
	}
	if err := cfg.retry.Validate(); err != nil {
		return nil, fmt.Errorf("start: retry profile: %w", err)
	}
	if err := probeListen(cfg.listen); err != nil {
		return nil, err
	}
	inner, err := libp2p.New(
		libp2p.Identity(cfg.key),
		libp2p.ListenAddrs(cfg.listen...),
		// No SO_REUSEPORT: a restarted peer must get its port back, and a busy
		// port must fail loudly instead of being shared.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(libp2pwebrtc.New),
		libp2p.DisableRelay(),
	)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	a := &app{cfg: cfg}
	if cfg.rendezvous == "" {
		if a.h, err = dialer.Wrap(inner, dialer.WithDefaultConfig(cfg.retry)); err != nil {
			_ = inner.Close()
			return nil, fmt.Errorf("start: %w", err)
		}
	} else {
		// One DHT on 127.0.0.1 and private networks as well as public ones.
		if a.node, err = resilientdht.New(inner,
			resilientdht.WithDHT(resilientdht.Plain),
			resilientdht.WithMode(cfg.dhtMode),
			resilientdht.WithBootstrapPeers(cfg.bootstrap...),
			resilientdht.WithPeerRetry(cfg.retry),
			resilientdht.WithMinPeers(1),
		); err != nil {
			_ = inner.Close() // a no-op when New closed it
			return nil, fmt.Errorf("start DHT: %w", err)
		}
		a.h, a.dht = a.node.Host(), a.node.Routing().(*dht.IpfsDHT)
	}
	h := a.h
	c, err := newChat(h, h, chatOptions{emit: cfg.emit, closeTimeout: cfg.closeTimeout, now: cfg.now, holdAcks: cfg.holdAcks, allowNewPartner: cfg.allowNewPartner})
	if err != nil {
		a.closeHost()
		return nil, fmt.Errorf("start chat: %w", err)
	}
	a.chat = c
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a, nil
}

// start connects to cfg.partner or starts looking for one at the
// rendezvous. Call it once.
func (a *app) start() error {
	cfg := a.cfg
	if cfg.partner != nil {
		if err := a.chat.setPartner(*cfg.partner); err != nil {
			return err
		}
	}
	if cfg.rendezvous != "" {
		r := &rendezvous{a: a, d: a.dht, ns: cfg.rendezvous, emit: a.chat.opts.emit, reAdvertise: cfg.reAdvertise}
		a.wg.Add(2)
		go r.advertiseLoop(a.ctx)
		go r.findLoop(a.ctx)
	}
	return nil
}

// probeListen fails early, with the address in the message, when a fixed TCP
// port is busy (libp2p.New would leave a half-built host behind).
func probeListen(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		port, err := a.ValueForProtocol(ma.P_TCP)
		if err != nil || port == "0" {
			continue
		}
		l, err := manet.Listen(a)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", a, err)
		}
		_ = l.Close()
	}
	return nil
}

// fullAddrs returns the host's addresses with /p2p/<id>, ready for --peer.
func (a *app) fullAddrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// close stops the rendezvous, says goodbye to the partner (bounded by the
// close timeout), and closes the DHT and the host. Idempotent.
func (a *app) close() {
	a.closeOnce.Do(func() {
		a.cancel()
		a.wg.Wait()
		a.chat.close()
		a.closeHost()
	})
}

// closeHost closes the resilient node (monitor, bootstrapper, DHT, host) or,
// without a rendezvous, the host.
func (a *app) closeHost() {
	var err error
	if a.node != nil {
		err = a.node.Close()
	} else {
		err = a.h.Close()
	}
	if err != nil {
		log.Debugw("close host", "err", err)
	}
}

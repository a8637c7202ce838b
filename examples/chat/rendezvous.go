package main

import (
	"context"
	"fmt"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

const (
	// defaultReAdvertise is how often the rendezvous is advertised again
	// after a success (provider records outlive it by far).
	defaultReAdvertise = 10 * time.Minute
	// findTimeout bounds one search for the rendezvous.
	findTimeout = 30 * time.Second
)

// rendezvousRetry spaces failed advertisements and searches: 1s, 2s, 4s, ...
// up to 15s, for as long as the chat runs.
var rendezvousRetry = resilience.RetryConfig{
	InitialDelay:      time.Second,
	MaxDelay:          15 * time.Second,
	BackoffMultiplier: 2,
	JitterFactor:      0.2,
}

// rendezvous finds the partner through the DHT: both peers advertise the
// rendezvous name as a provider record and search for other providers of it.
type rendezvous struct {
	a           *app
	d           *dht.IpfsDHT
	ns          string
	emit        func(chatEvent)
	reAdvertise time.Duration
}

// waitRoutable waits until the DHT's routing table has a peer; false if ctx
// ended. The resilient node (resilientdht.New) dials the bootstrap peers and
// rejoins after outages.
func (r *rendezvous) waitRoutable(ctx context.Context) bool {
	for n := uint32(1); r.d.RoutingTable().Size() == 0; n++ {
		if resilience.Sleep(ctx, min(rendezvousRetry.Delay(n, 0), time.Second)) != nil {
			return false
		}
	}
	return true
}

// advertiseLoop advertises the rendezvous until ctx ends.
func (r *rendezvous) advertiseLoop(ctx context.Context) {
	defer r.a.wg.Done()
	if !r.waitRoutable(ctx) {
		return
	}
	disc := drouting.NewRoutingDiscovery(r.d)
	every := r.reAdvertise
	if every <= 0 {
		every = defaultReAdvertise
	}
	var failures uint32
	for {
		_, err := disc.Advertise(ctx, r.ns)
		wait := every
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait = rendezvousRetry.Delay(failures, 0)
			log.Debugw("advertise rendezvous failed", "ns", r.ns, "err", err, "retry_in", wait)
		} else {
			log.Debugw("advertised rendezvous", "ns", r.ns, "next_in", every)
			failures = 0
		}
		if resilience.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// findLoop searches the rendezvous until it finds a partner or the chat has
// one (a peer that found us first), then stops.
func (r *rendezvous) findLoop(ctx context.Context) {
	defer r.a.wg.Done()
	r.emit(evtInfo{Text: fmt.Sprintf("looking for a partner at rendezvous %q through the DHT", r.ns)})
	if !r.waitRoutable(ctx) {
		return
	}
	disc := drouting.NewRoutingDiscovery(r.d)
	for n := uint32(1); ; n++ {
		if r.a.chat.currentPartner() != "" {
			return
		}
		if pi, ok := r.findOnce(ctx, disc); ok {
			if r.a.chat.currentPartner() != "" {
				return // someone found us meanwhile
			}
			r.emit(evtInfo{Text: fmt.Sprintf("found %s at rendezvous %q", shortID(pi.ID), r.ns)})
			if err := r.a.chat.setPartner(pi); err != nil {
				log.Debugw("set partner", "err", err)
			}
			return
		}
		if resilience.Sleep(ctx, rendezvousRetry.Delay(n, 0)) != nil {
			return
		}
	}
}

// findOnce runs one search and returns the first other peer with addresses.
func (r *rendezvous) findOnce(ctx context.Context, disc *drouting.RoutingDiscovery) (peer.AddrInfo, bool) {
	ctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	ch, err := disc.FindPeers(ctx, r.ns)
	if err != nil {
		log.Debugw("find rendezvous", "ns", r.ns, "err", err)
		return peer.AddrInfo{}, false
	}
	var found peer.AddrInfo
	ok := false
	for pi := range ch { // drain: the channel closes when the query ends
		if !ok && pi.ID != r.a.h.ID() && len(pi.Addrs) > 0 {
			found, ok = pi, true
			cancel()
		}
	}
	return found, ok
}

package dialer

import (
	"context"
	"math"
	"net/netip"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// go-libp2p's resource manager limits how fast connections to (and from) one
// IP are opened: by default 0.2 per second with a burst of 16, per IPv4
// address and per IPv6 /56, loopback exempt, and every connection it opens
// counts — failed dials too (p2p/host/resource-manager/conn_rate_limiter.go).
// A refused dial fails at once with "rate limit exceeded".
const (
	// DefaultIPDialRate is go-libp2p's default connection rate per IP, per second.
	DefaultIPDialRate = 0.2
	// DefaultIPDialBurst is go-libp2p's default connection burst per IP.
	DefaultIPDialBurst = 16
	// maxIPBuckets bounds the limiter's memory; full buckets are dropped first.
	maxIPBuckets = 4096
)

// ipLimiter mirrors that limit on the dialling side, so that the scheduler
// defers a dial the swarm would refuse instead of spending an attempt on it,
// and spreads the dials to peers sharing an IP. Each address of a peer counts
// as one connection (the swarm may dial them all). A nil *ipLimiter allows
// everything. It is safe for concurrent use.
type ipLimiter struct {
	perSecond rate.Limit
	burst     int

	mu      sync.Mutex
	buckets map[netip.Prefix]*rate.Limiter
}

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &ipLimiter{perSecond: rate.Limit(perSecond), burst: burst, buckets: make(map[netip.Prefix]*rate.Limiter)}
}

// prefixes counts addrs per rate-limited prefix.
func prefixes(addrs []ma.Multiaddr) map[netip.Prefix]int {
	var out map[netip.Prefix]int
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue // the connection is to the relay, counted there
		}
		ip, err := manet.ToIP(a)
		if err != nil {
			continue // a DNS name: the IP is not known before the dial
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok || addr.Unmap().IsLoopback() {
			continue
		}
		addr = addr.Unmap()
		bits := 32
		if addr.Is6() {
			bits = 56
		}
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		if out == nil {
			out = make(map[netip.Prefix]int, 1)
		}
		out[p]++
	}
	return out
}

// bucket returns p's bucket, creating it. l.mu must be held.
func (l *ipLimiter) bucket(p netip.Prefix) *rate.Limiter {
	b := l.buckets[p]
	if b != nil {
		return b
	}
	if len(l.buckets) >= maxIPBuckets {
		now := time.Now()
		for q, old := range l.buckets {
			if old.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, q)
			}
		}
	}
	b = rate.NewLimiter(l.perSecond, l.burst)
	if len(l.buckets) < maxIPBuckets {
		l.buckets[p] = b
	}
	return b
}

// wait reserves room for a dial to addrs and waits until it is there, or ctx
// ends. A dial that must leave reserve tokens in each bucket (a probe, see
// probeReserve) first waits until the bucket holds its own tokens plus the
// reserve, so that the probes of a long outage cannot spend the burst that the
// fan-out after the network's return needs.
func (l *ipLimiter) wait(ctx context.Context, addrs []ma.Multiaddr, reserve int) error {
	if l == nil {
		return nil
	}
	want := prefixes(addrs)
	if len(want) == 0 {
		return nil
	}
	reserve = min(reserve, l.burst-1)
	for reserve > 0 {
		now := time.Now()
		var short time.Duration
		l.mu.Lock()
		for p, n := range want {
			need := float64(min(n, l.burst-reserve) + reserve)
			if have := l.bucket(p).TokensAt(now); have < need {
				short = max(short, time.Duration((need-have)/float64(l.perSecond)*float64(time.Second)))
			}
		}
		l.mu.Unlock()
		if short <= 0 {
			break
		}
		log.Debugw("deferring a probe: the per-IP connection rate keeps a reserve for the fan-out", "delay", short)
		if err := resilience.Sleep(ctx, short); err != nil {
			return err
		}
	}
	now := time.Now()
	var delay time.Duration
	reservations := make([]*rate.Reservation, 0, len(want))
	l.mu.Lock()
	for p, n := range want {
		r := l.bucket(p).ReserveN(now, min(n, l.burst))
		reservations = append(reservations, r)
		delay = max(delay, r.DelayFrom(now))
	}
	l.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	log.Debugw("deferring a dial under the per-IP connection rate limit", "delay", delay)
	if err := resilience.Sleep(ctx, delay); err != nil {
		for _, r := range reservations {
			r.CancelAt(time.Now())
		}
		return err
	}
	return nil
}

// probeReserve is the share of each IP's burst a probe leaves for the dials
// that follow a successful one (the fan-out to every bootstrap and backup
// peer, kad-dht's refresh): half of it.
func (l *ipLimiter) probeReserve() int {
	if l == nil {
		return 0
	}
	return l.burst / 2
}

// refused records that the swarm refused a dial to addrs under its rate limit:
// its buckets are empty, whatever the mirror thought, so the next wait lasts
// until one refills. It reports false when the mirror cannot tell when that is
// (it is off, or the addresses are not limited by it): the caller then pauses
// for one token of go-libp2p's default rate.
func (l *ipLimiter) refused(addrs []ma.Multiaddr) bool {
	want := prefixes(addrs)
	if l == nil || len(want) == 0 {
		return false
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range want {
		b := l.bucket(p)
		if n := math.Floor(b.TokensAt(now)); n > 0 {
			b.AllowN(now, int(n))
		}
	}
	return true
}

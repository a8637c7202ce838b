package netwatch

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
)

// MaxEventChanges bounds [EvtNetworkChanged.Changes]; a longer burst keeps its
// first and newest changes and counts the rest in Count.
const MaxEventChanges = 32

// EvtNetworkChanged is emitted on the host's event bus when the host's own network
// changed: a link went up or down, an address was added or removed, a default route
// was gained or lost, or the machine woke from sleep. go-libp2p has no such event
// (go-libp2p#2735); EvtLocalAddressesUpdated reports only the host's listen
// addresses, and only when they change. Components that hold connections or caches
// tied to the network (a DHT's routing table, relays, dial backoffs) can react:
//
//	sub, _ := h.EventBus().Subscribe(new(netwatch.EvtNetworkChanged))
//	for e := range sub.Out() {
//		if e.(netwatch.EvtNetworkChanged).Gained() {
//			// probe, refresh, clear backoffs
//		}
//	}
//
// Damping counts signals instead of delaying them: the first change after a quiet
// period is emitted at once, alone (Count 1). Changes during the damping window that
// follows (default 1 s, [WithDamping]) are collected and emitted as one event when the
// window ends, and a burst that goes on is reported once per window. So a flapping
// link costs subscribers one event per window, and the first sign of a change is
// never held back.
type EvtNetworkChanged struct {
	// Changes are the changes the event reports, oldest first; of a burst longer
	// than MaxEventChanges, the first and the newest.
	Changes []Change
	// Count is how many changes the event stands for; more than len(Changes) when
	// older changes of a long burst were left out.
	Count int
}

// Gained reports whether any of the changes may have brought the network (back):
// see [Kind.Gained].
func (e EvtNetworkChanged) Gained() bool {
	for _, c := range e.Changes {
		if c.Kind.Gained() {
			return true
		}
	}
	return false
}

// Lost reports whether any of the changes may have taken the network away: see
// [Kind.Lost].
func (e EvtNetworkChanged) Lost() bool {
	for _, c := range e.Changes {
		if c.Kind.Lost() {
			return true
		}
	}
	return false
}

// publisher emits EvtNetworkChanged, damped as the event's documentation says.
type publisher struct {
	em      event.Emitter
	damping time.Duration
	kick    chan struct{} // capacity 1: changes are pending

	mu      sync.Mutex
	pending []Change // newest MaxEventChanges
	count   int      // changes pending, including those left out of pending
}

func newPublisher(em event.Emitter, damping time.Duration) *publisher {
	return &publisher{em: em, damping: damping, kick: make(chan struct{}, 1)}
}

// add queues c; it never blocks.
func (p *publisher) add(c Change) {
	p.mu.Lock()
	if len(p.pending) == MaxEventChanges { // keep the first: it may be the one emitted alone
		p.pending = append(p.pending[:1], p.pending[2:]...)
	}
	p.pending = append(p.pending, c)
	p.count++
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// take removes up to n pending changes (all for n < 0), oldest first, and returns
// the event reporting them; ok is false when nothing is pending.
func (p *publisher) take(n int) (e EvtNetworkChanged, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 {
		return e, false
	}
	if n < 0 || n >= p.count {
		e = EvtNetworkChanged{Changes: p.pending, Count: p.count}
		p.pending, p.count = nil, 0
		return e, true
	}
	// n < count: the oldest pending changes. Changes left out of pending are newer
	// than pending[0] (see add) and stay counted with the rest.
	k := min(n, len(p.pending))
	e = EvtNetworkChanged{Changes: append([]Change(nil), p.pending[:k]...), Count: k}
	p.pending = append(p.pending[:0], p.pending[k:]...)
	p.count -= k
	return e, true
}

func (p *publisher) emit(e EvtNetworkChanged) {
	if err := p.em.Emit(e); err != nil {
		log.Debugw("emit EvtNetworkChanged", "err", err)
	}
}

// run emits until done is closed.
func (p *publisher) run(done <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var window <-chan time.Time // non-nil while a damping window is open
	for {
		select {
		case <-done:
			return
		case <-p.kick:
			if p.damping == 0 {
				for e, ok := p.take(1); ok; e, ok = p.take(1) {
					p.emit(e)
				}
				continue
			}
			if window != nil {
				continue // collected; the window's end emits them
			}
			if e, ok := p.take(1); ok {
				p.emit(e) // the first change after a quiet window: at once, alone
				timer.Reset(p.damping)
				window = timer.C
			}
		case <-window:
			if e, ok := p.take(-1); ok {
				p.emit(e)
				timer.Reset(p.damping) // the burst goes on: another window
				continue
			}
			window = nil // a quiet window: the next change is emitted at once
		}
	}
}

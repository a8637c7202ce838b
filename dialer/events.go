package dialer

import (
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
)

// EvtConnectRetry is emitted on the host's event bus after each failed attempt
// of a retry round that will be retried (Connect, ConnectWithConfig, NewStream,
// keep-alive reconnects). Subscribe with h.EventBus().Subscribe(new(EvtConnectRetry)).
//
// Delivery is decoupled from dialing: events wait in a bounded queue and are
// dropped (MetricsTracer.RetryEventDropped) while a subscriber is stalled. As with
// every libp2p event, a subscriber must read its channel or close its
// subscription; Close waits for an event being delivered.
type EvtConnectRetry struct {
	// Peer is the peer being dialed.
	Peer peer.ID
	// Attempt is the number of the attempt that failed; 1 is the first of the round.
	Attempt uint32
	// Err is that attempt's error.
	Err error
	// Delay is the wait before the next attempt.
	Delay time.Duration
}

// notifier delivers retry notifications to WithOnRetry's callback and the event
// bus on its own goroutine, so a stalled consumer never delays a retry loop.
type notifier struct {
	ch      chan EvtConnectRetry
	onRetry func(id peer.ID, attempt uint32, err error, delay time.Duration)
	emitter event.Emitter // nil: no bus events
	tracer  MetricsTracer
	stop    chan struct{}
	done    chan struct{}
}

func newNotifier(onRetry func(peer.ID, uint32, error, time.Duration), emitter event.Emitter, tracer MetricsTracer) *notifier {
	n := &notifier{
		ch:      make(chan EvtConnectRetry, RetryEventBuffer),
		onRetry: onRetry,
		emitter: emitter,
		tracer:  tracer,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go n.run()
	return n
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		var ev EvtConnectRetry
		select {
		case <-n.stop:
			return
		case ev = <-n.ch:
		}
		if n.onRetry != nil {
			n.onRetry(ev.Peer, ev.Attempt, ev.Err, ev.Delay)
		}
		if n.emitter != nil {
			if err := n.emitter.Emit(ev); err != nil {
				log.Debugw("emit EvtConnectRetry", "peer", ev.Peer, "err", err)
			}
		}
	}
}

// notify queues ev without blocking; it drops ev when the queue is full.
func (n *notifier) notify(ev EvtConnectRetry) {
	select {
	case n.ch <- ev:
	default:
		if n.tracer != nil {
			n.tracer.RetryEventDropped()
		}
		log.Debugw("retry notification dropped: consumer stalled", "peer", ev.Peer, "attempt", ev.Attempt)
	}
}

// close drops what is still queued, waits for a delivery in progress, stops the
// goroutine and closes the emitter.
func (n *notifier) close() {
	close(n.stop)
	<-n.done
	if n.emitter != nil {
		_ = n.emitter.Close()
	}
}

package healthmon

// EvtHealthChanged is emitted on the host's event bus when the reported status
// changes. The emitter is stateful: a new subscriber first receives the latest
// change.
//
// The monitor emits from a goroutine of its own, so a bus subscriber that does not
// read never stalls checks or recovery; it does delay Close, which waits for that
// goroutine, until it reads or closes its subscription.
type EvtHealthChanged struct {
	// Previous is the status reported before (StatusUnknown at the first check).
	Previous Status
	// Current is the status reported now.
	Current Status
	// Report is the check that changed the status.
	Report HealthReport
}

// Subscribe returns a channel that receives a HealthReport each time the
// reported status changes, starting with the latest report if a check has run.
// The channel holds one report and the newest wins: a reader that falls behind
// misses intermediate reports and always finds the latest one; it never stalls
// the monitor. The channel is closed by Unsubscribe or Close; after Close,
// Subscribe returns a closed channel.
func (m *Monitor) Subscribe() <-chan HealthReport {
	ch := make(chan HealthReport, 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs == nil { // closed
		close(ch)
		return ch
	}
	m.subs[ch] = struct{}{}
	if m.hasLast {
		ch <- m.last
	}
	return ch
}

// Unsubscribe stops deliveries to ch (a channel returned by Subscribe) and closes
// it. Unknown or already unsubscribed channels are ignored.
func (m *Monitor) Unsubscribe(ch <-chan HealthReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.subs {
		if c == ch {
			delete(m.subs, c)
			close(c)
			return
		}
	}
}

// publishLocked hands rep to every subscriber and to the bus emitter, replacing a
// report they have not read yet. m.mu must be held, so there is one sender at a
// time and the second send after making room always succeeds.
func (m *Monitor) publishLocked(from Status, rep HealthReport) {
	for ch := range m.subs {
		sendLatest(ch, rep)
	}
	sendLatest(m.emitCh, EvtHealthChanged{Previous: from, Current: rep.Status, Report: rep})
}

func sendLatest[T any](ch chan T, v T) {
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}

// closeSubscribers closes every subscriber channel; later Subscribe calls get a
// closed channel.
func (m *Monitor) closeSubscribers() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ch := range m.subs {
		close(ch)
	}
	m.subs = nil
}

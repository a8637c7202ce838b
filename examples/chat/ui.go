package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// ui prints events and status lines, one line each. Safe for concurrent use.
type ui struct {
	mu  sync.Mutex
	out io.Writer
}

func newUI(out io.Writer) *ui { return &ui{out: out} }

// printf prints one line (a newline is added).
func (u *ui) printf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.out, format+"\n", args...)
}

// event prints e; it is the chat's emit function.
func (u *ui) event(e chatEvent) {
	if line := formatEvent(e); line != "" {
		u.printf("%s", line)
	}
}

// shortID is the last 8 characters of a peer id: the start is the same for
// every ed25519 key ("12D3KooW").
func shortID(id peer.ID) string {
	s := id.String()
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}

// formatDelay shows a retry delay like "1.9s".
func formatDelay(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// sanitize makes a partner's text safe for the terminal: control characters
// (escape sequences), bidi overrides and isolates (U+202A–U+202E,
// U+2066–U+2069), zero-width characters (U+200B–U+200F, U+FEFF) and the like
// become U+FFFD, so the user sees that something was there; tabs stay. See
// textutil.Printable.
func sanitize(s string) string { return textutil.Printable(s) }

// formatEvent renders an event as one line; "" for events not shown.
func formatEvent(e chatEvent) string {
	switch e := e.(type) {
	case evtMessageReceived:
		return fmt.Sprintf("[%s] %s: %s", e.Time.Local().Format("15:04:05"), shortID(e.From), sanitize(e.Text))
	case evtMessageQueued:
		return fmt.Sprintf("pending #%d (partner unreachable; will be sent when it is back): %s", e.Seq, sanitize(e.Text))
	case evtMessagesDelivered:
		ids := make([]string, len(e.Seqs))
		for i, s := range e.Seqs {
			ids[i] = fmt.Sprintf("#%d", s)
		}
		return "delivered " + strings.Join(ids, ", ")
	case evtPartnerChosen:
		return fmt.Sprintf("chatting with %s (%s)", shortID(e.Peer), e.Peer)
	case evtPartnerConnected:
		return fmt.Sprintf("connected to %s", shortID(e.Peer))
	case evtPartnerDisconnected:
		return fmt.Sprintf("%s disconnected", shortID(e.Peer))
	case evtPartnerRestarted:
		return fmt.Sprintf("%s restarted", shortID(e.Peer))
	case evtReconnectScheduled:
		return fmt.Sprintf("reconnecting (attempt %d, next in %s)", e.Attempt, formatDelay(e.Delay))
	case evtPeerRejected:
		return fmt.Sprintf("refused chat from %s: already chatting with %s", shortID(e.Peer), shortID(e.Partner))
	case evtInfo:
		return e.Text
	default:
		return ""
	}
}

const helpText = `type a line and press Enter to send it
/status  partner, connection and unacknowledged messages
/quit    leave (Ctrl-D too); waits briefly for acknowledgements
//text   sends "/text"`

// readLine reads one line of at most max bytes (without the line end). A
// longer line is consumed and reported with tooLong. At the end of input it
// returns the last unterminated line, if any, with io.EOF.
func readLine(r *bufio.Reader, max int) (line string, tooLong bool, err error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(b)+len(chunk) > max+2 { // +2: room for "\r\n"
				tooLong, b = true, nil
			} else {
				b = append(b, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if !tooLong && len(s) > max {
			tooLong, s = true, ""
		}
		return s, tooLong, err
	}
}

// runInput reads the user's lines from in and acts on them until /quit or
// the end of input (Ctrl-D); it returns nil then, or the read error.
func runInput(in io.Reader, c *chat, u *ui) error {
	r := bufio.NewReader(in)
	for {
		line, tooLong, err := readLine(r, maxTextBytes)
		switch {
		case tooLong:
			u.printf("line too long (max %d bytes); not sent", maxTextBytes)
		case line != "":
			if quit := handleLine(line, c, u); quit {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// handleLine sends a line or runs a command; true means quit.
func handleLine(line string, c *chat, u *ui) bool {
	if strings.TrimSpace(line) == "" {
		return false
	}
	if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
		switch cmd := strings.TrimSpace(line); cmd {
		case "/quit", "/exit":
			return true
		case "/help":
			u.printf("%s", helpText)
		case "/status":
			st := c.status()
			partner := "none yet"
			if st.Partner != "" {
				partner = fmt.Sprintf("%s (connected: %v)", st.Partner, st.Connected)
			}
			u.printf("session %s; partner %s; %d message(s) not yet acknowledged; %d duplicate(s) dropped", st.Session, partner, st.Unacked, st.Duplicates)
		default:
			u.printf("unknown command %s (try /help)", cmd)
		}
		return false
	}
	line = strings.TrimPrefix(line, "/") // "//x" sends "/x"
	if _, err := c.send(line); err != nil {
		u.printf("not sent: %v", err)
	}
	return false
}

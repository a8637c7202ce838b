package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFormatEvent(t *testing.T) {
	id := testPeerID(t)
	short := shortID(id)
	if len(short) != 8 || !strings.HasSuffix(id.String(), short) {
		t.Fatalf("shortID(%s) = %q", id, short)
	}
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local)
	for _, tc := range []struct {
		e    chatEvent
		want string
	}{
		{evtReconnectScheduled{Peer: id, Attempt: 2, Delay: 1940 * time.Millisecond}, "reconnecting (attempt 2, next in 1.9s)"},
		{evtReconnectScheduled{Peer: id, Attempt: 1, Delay: 250 * time.Millisecond}, "reconnecting (attempt 1, next in 0.2s)"},
		{evtMessageReceived{From: id, Seq: 3, Time: at, Text: "hi\x1b[2Jthere"}, "[15:04:05] " + short + ": hi\uFFFD[2Jthere"},
		// issue 13: bidi overrides and zero-width characters do not reach the terminal
		{evtMessageReceived{From: id, Seq: 4, Time: at, Text: "pay \u202Eexe.txt\u202C now"}, "[15:04:05] " + short + ": pay \uFFFDexe.txt\uFFFD now"},
		{evtMessageReceived{From: id, Seq: 5, Time: at, Text: "\u2066a\u2069\u200Bb\u200F\uFEFFc\tTAB"}, "[15:04:05] " + short + ": \uFFFDa\uFFFD\uFFFDb\uFFFD\uFFFDc\tTAB"},
		{evtMessageQueued{Seq: 6, Text: "mine\u202E"}, "pending #6 (partner unreachable; will be sent when it is back): mine\uFFFD"},
		{evtMessageQueued{Seq: 4, Text: "later"}, "pending #4 (partner unreachable; will be sent when it is back): later"},
		{evtMessagesDelivered{Seqs: []uint64{4, 5}}, "delivered #4, #5"},
		{evtPartnerDisconnected{Peer: id}, short + " disconnected"},
		{evtPartnerConnected{Peer: id}, "connected to " + short},
		{evtPartnerRestarted{Peer: id}, short + " restarted"},
		{evtPartnerChosen{Peer: id}, "chatting with " + short + " (" + id.String() + ")"},
		{evtPeerRejected{Peer: id, Partner: id}, "refused chat from " + short + ": already chatting with " + short},
		{evtInfo{Text: "status"}, "status"},
		{42, ""},
	} {
		if got := formatEvent(tc.e); got != tc.want {
			t.Errorf("formatEvent(%#v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestReadLine(t *testing.T) {
	in := "one\r\ntwo\n\n" + strings.Repeat("x", 50) + "\nthree\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 16) // small buffer: long lines span reads
	type result struct {
		line    string
		tooLong bool
		eof     bool
	}
	var got []result
	for {
		line, tooLong, err := readLine(r, 10)
		got = append(got, result{line, tooLong, errors.Is(err, io.EOF)})
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	want := []result{{"one", false, false}, {"two", false, false}, {"", false, false}, {"", true, false}, {"three", false, false}, {"last", false, true}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// Exactly max bytes is fine.
	line, tooLong, _ := readLine(bufio.NewReader(strings.NewReader(strings.Repeat("y", 10)+"\n")), 10)
	if tooLong || len(line) != 10 {
		t.Fatalf("line of max length: %q, tooLong=%v", line, tooLong)
	}
}

// TestRunInput drives the input loop of a peer without a partner: lines are
// queued as pending, commands answer, /quit stops reading.
func TestRunInput(t *testing.T) {
	rec := &recorder{}
	a := startTestApp(t, testKey(t), listenAny, nil, rec)
	var out strings.Builder
	u := newUI(&syncWriter{w: &out})
	in := strings.NewReader("hello\n/status\n/nope\n//slash\n   \n" + strings.Repeat("z", maxTextBytes+1) + "\n/quit\nnot read\n")
	if err := runInput(in, a.chat, u); err != nil {
		t.Fatalf("runInput: %v", err)
	}
	text := out.String()
	for _, want := range []string{"session " + a.chat.session + "; partner none yet; 1 message(s) not yet acknowledged; 0 duplicate(s) dropped", "unknown command /nope (try /help)", "line too long"} {
		if !strings.Contains(text, want) {
			t.Errorf("output %q lacks %q", text, want)
		}
	}
	var queued []string
	for _, e := range rec.all() {
		if q, ok := e.(evtMessageQueued); ok {
			queued = append(queued, q.Text)
		}
	}
	if strings.Join(queued, "|") != "hello|/slash" {
		t.Fatalf("queued %q, want hello and /slash (and nothing after /quit)", queued)
	}
	// Ctrl-D: the end of input ends the loop.
	if err := runInput(strings.NewReader("bye"), a.chat, u); err != nil {
		t.Fatalf("runInput at EOF: %v", err)
	}
	if n := len(a.chat.out.unacked()); n != 3 {
		t.Fatalf("%d unacked, want 3 (the last unterminated line is sent too)", n)
	}
}

package main

import (
	"slices"
	"strings"
	"testing"
)

// TestOverWebRTCDirect: the listening peer speaks WebRTC-direct only (its
// address has a /certhash/); the other dials that address, and messages go
// both ways.
func TestOverWebRTCDirect(t *testing.T) {
	recA, recB := &recorder{}, &recorder{}
	b := startTestApp(t, testKey(t), "/ip4/127.0.0.1/udp/0/webrtc-direct", nil, recB)
	bInfo := addrInfo(b)
	if len(bInfo.Addrs) != 1 || !strings.Contains(bInfo.Addrs[0].String(), "/webrtc-direct/certhash/") {
		t.Fatalf("listening on %v, want one /webrtc-direct address", bInfo.Addrs)
	}
	a := startTestApp(t, testKey(t), listenAny, &bInfo, recA)
	send(t, a, "over webrtc")
	send(t, b, "back over webrtc")
	waitFor(t, "messages both ways", func() bool { return len(recA.received()) == 1 && len(recB.received()) == 1 })
	if !slices.Equal(recB.received(), []string{"over webrtc"}) || !slices.Equal(recA.received(), []string{"back over webrtc"}) {
		t.Fatalf("a got %q, b got %q", recA.received(), recB.received())
	}
	conns := a.h.Network().ConnsToPeer(b.h.ID())
	if len(conns) == 0 {
		t.Fatal("no connection to b")
	}
	for _, c := range conns {
		if c.ConnState().Transport != "webrtc-direct" {
			t.Fatalf("connection over %q, want webrtc-direct", c.ConnState().Transport)
		}
	}
}

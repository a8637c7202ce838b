package resilientdht

import (
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// ProfileFor returns resilience.ForWebRTC and true when every address in
// addrs that a dial could use is a /webrtc-direct address (WebRTC runs its
// own ICE retries, so the dialer retries less), and false otherwise: a peer
// with a TCP or QUIC address keeps its profile. Circuit (/p2p-circuit)
// addresses are not counted as usable; an empty list is false.
func ProfileFor(addrs []ma.Multiaddr) (resilience.RetryConfig, bool) {
	webrtc := 0
	for _, a := range addrs {
		if isCircuit(a) {
			continue
		}
		if !isWebRTCDirect(a) {
			return resilience.RetryConfig{}, false
		}
		webrtc++
	}
	if webrtc == 0 {
		return resilience.RetryConfig{}, false
	}
	return resilience.ForWebRTC(), true
}

func isWebRTCDirect(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_WEBRTC_DIRECT)
	return err == nil
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// Package testnet builds real go-libp2p networks on 127.0.0.1 for tests, with
// fault injection.
//
// A [Node] is a real libp2p host (TCP only, Noise + yamux) with a fixed
// identity and, after its first start, a fixed port. A test can stop it and
// start it again on the same port with the same key, cut it off from the
// network with [Node.Isolate], or refuse single peers with its [Gater].
// Optionally a node runs a go-libp2p-kad-dht instance ([WithDHT]).
//
//	nodes := testnet.NewNetwork(t, 5, testnet.WithDHT(dht.ModeServer))
//	testnet.ConnectAll(t, nodes...)
//	nodes[0].Isolate()  // every dial and accept refused, conns closed
//	nodes[0].Rejoin()
//	nodes[1].Stop()     // Addrs/AddrInfo stay valid
//	nodes[1].Start()    // same key, same port, fresh host and DHT
//
// What every host gets (so nothing leaves 127.0.0.1):
//   - listens on /ip4/127.0.0.1/tcp/0 first and on the port it got from then on
//     ([WithNoListen]: no listener at all);
//   - TCP only, with SO_REUSEPORT disabled (tcp.DisableReuseport), so dials
//     use ephemeral source ports and a busy port makes Start fail loudly
//     instead of silently sharing the port;
//   - no relay transport (libp2p.DisableRelay), no relay service, no NAT port
//     mapping, no hole punching, no mDNS (libp2p enables none of the last
//     four unless asked);
//   - a real resource manager with rcmgr.InfiniteLimits: streams and conns
//     are accounted, but no limit can make a test flaky (loopback is also
//     exempt from rcmgr's per-IP conn limit and rate limit). Pass
//     libp2p.ResourceManager through [WithHostOptions] to replace it;
//   - libp2p's default connection manager and Prometheus registerer.
//
// The DHT gets no bootstrap peers, accepts loopback addresses in queries,
// its routing table and its peerstore, and never dials public nodes.
//
// NewNode, NewNetwork, Start, Connect and ConnectAll report failure with
// t.Fatal and so must run on the test goroutine; [Node.TryStart] returns an
// error instead. All Node and Gater methods are safe for concurrent use.
package testnet

// Package bench holds the module's long side-by-side measurements that need
// dependencies the module itself does not: the outage harness runs this
// module beside kubo's bootstrapper (github.com/ipfs/boxo/bootstrap). It is a
// module of its own so that users of go-libp2p-resilience never download boxo.
//
//	cd bench && RESILIENCE_LONG=1 go test -run TestOutageHarness -v -timeout 60m .
package bench

//go:build tools
package main
import (
 _ "github.com/libp2p/go-libp2p"
 _ "github.com/libp2p/go-libp2p-kad-dht"
 _ "github.com/multiformats/go-multiaddr"
 _ "github.com/ipfs/go-log/v2"
 _ "go.uber.org/goleak"
 _ "golang.org/x/time/rate"
 _ "github.com/prometheus/client_golang/prometheus"
)

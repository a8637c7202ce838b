package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/internal/identity"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// TestLoopbackFlagAndField: --loopback-addresses-on-lan-dht and the config
// field loopback_addresses_on_lan_dht (flags win); auto by default; anything
// else is refused naming the flag.
func TestLoopbackFlagAndField(t *testing.T) {
	c, err := loadArgs(t, "--bootstrap", testPeer)
	if err != nil || c.LoopbackOnLanDHT != "auto" {
		t.Fatalf("default: %q, %v; want auto", c.LoopbackOnLanDHT, err)
	}
	path := filepath.Join(t.TempDir(), "node.json")
	if err := os.WriteFile(path, []byte(`{"loopback_addresses_on_lan_dht": "false"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = loadArgs(t, "--config", path, "--bootstrap", testPeer); err != nil || c.LoopbackOnLanDHT != "false" {
		t.Fatalf("config file: %q, %v; want false", c.LoopbackOnLanDHT, err)
	}
	if c, err = loadArgs(t, "--config", path, "--bootstrap", testPeer, "--loopback-addresses-on-lan-dht", "true"); err != nil || c.LoopbackOnLanDHT != "true" {
		t.Fatalf("flag over file: %q, %v; want true", c.LoopbackOnLanDHT, err)
	}
	if _, err = loadArgs(t, "--bootstrap", testPeer, "--loopback-addresses-on-lan-dht", "yes"); err == nil || !strings.Contains(err.Error(), "--loopback-addresses-on-lan-dht") {
		t.Fatalf("bad value: %v; want an error naming the flag", err)
	}
}

// TestNodeFromFlags: the flag values reach resilientdht.New — loopback
// auto on a loopback-only node, false when asked; --dht lan with --mode auto
// runs the LAN DHT as a server, with --mode client as a client.
func TestNodeFromFlags(t *testing.T) {
	for _, tc := range []struct {
		name, kind, loopback string
		mode                 dht.ModeOpt
		wantLoopback         bool
		wantMode             dht.ModeOpt
	}{
		{"dual auto", "dual", "auto", dht.ModeAuto, true, dht.ModeServer},
		{"dual loopback off", "dual", "false", dht.ModeAuto, false, dht.ModeServer},
		{"lan auto mode", "lan", "auto", dht.ModeAuto, true, dht.ModeServer},
		{"lan client", "lan", "auto", dht.ModeClient, true, dht.ModeClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := identity.Generate()
			if err != nil {
				t.Fatal(err)
			}
			n, err := newNode(nodeConfig{
				key: key, listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
				mode: tc.mode, dhtKind: tc.kind, loopbackOnLan: tc.loopback, minPeers: 1,
				bootstrapCfg: resilience.ForDHTBootstrap(), peerCfg: resilience.ForDHTPeer(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if n.LoopbackOnLanDHT() != tc.wantLoopback {
				t.Errorf("loopback on LAN DHT = %v, want %v", n.LoopbackOnLanDHT(), tc.wantLoopback)
			}
			var mode dht.ModeOpt
			switch d := n.Routing().(type) {
			case *dht.IpfsDHT:
				mode = d.Mode()
			case *dual.DHT:
				mode = d.LAN.Mode()
			}
			if mode != tc.wantMode {
				t.Errorf("LAN DHT mode %v, want %v", mode, tc.wantMode)
			}
		})
	}
}

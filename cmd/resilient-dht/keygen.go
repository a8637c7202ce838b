package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/chiral-network/go-libp2p-resilience/internal/identity"
)

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fset.String("out", "", "`file` to write the new key to (must not exist)")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	if *out == "" {
		return badInput("keygen: --out FILE is required")
	}
	k, err := identity.Create(*out) // never replaces an existing file
	if err != nil {
		return usageError{err}
	}
	id, err := identity.PeerID(k)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\npeer id %s\n", *out, id)
	return nil
}

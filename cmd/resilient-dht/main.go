// Command resilient-dht runs a Kademlia DHT node that stays connected on flaky
// networks: bootstrap with retries and backup peers, a health monitor that keeps
// the routing table above --min-peers, Prometheus metrics and a health endpoint.
//
//	resilient-dht run [flags]        run a DHT node
//	resilient-dht demo [flags]       an in-process network on 127.0.0.1: outage and recovery
//	resilient-dht status [--http A]  print a running node's health and trackers
//	resilient-dht keygen --out FILE  create an identity key file
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// maxErrorBytes bounds the one line an error is printed as; values in it are
// already cut to textutil.MaxQuoted bytes, this catches any that are not.
const maxErrorBytes = 1024

// usageError marks bad input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

const usage = `usage: resilient-dht <command> [flags]

commands:
  run      run a DHT node (see: resilient-dht run -h)
  demo     start a network of nodes on 127.0.0.1, break it and watch it recover
  status   print a running node's health and connection trackers
  keygen   create an identity key file
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "demo":
		err = cmdDemo(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "keygen":
		err = cmdKeygen(rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = badInput("unknown command %s (want run, demo, status or keygen)", textutil.Quote(cmd))
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "resilient-dht:", textutil.Clip(err.Error(), maxErrorBytes))
		return 2
	default:
		fmt.Fprintln(stderr, "resilient-dht:", textutil.Clip(err.Error(), maxErrorBytes))
		return 1
	}
}

// parseFlags parses args with fs, turning flag errors into one-line usage errors.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "usage of resilient-dht %s:\n", fs.Name())
			fs.PrintDefaults()
			return err
		}
		// The flag package quotes the whole value ("invalid value %q for flag").
		return badInput("%s: %s", fs.Name(), textutil.Clip(err.Error(), 2*textutil.MaxQuoted))
	}
	if fs.NArg() > 0 {
		return badInput("%s: unexpected argument %s", fs.Name(), textutil.Quote(fs.Arg(0)))
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/internal/fsutil"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// The status client trusts the answer no more than any other input: it waits
// at most statusTimeout in all, reads at most maxStatusBytes (a /status
// document has at most maxTrackerRows rows and is some tens of KiB), follows
// no redirect, and prints text from it only through textutil.Printable.
const (
	statusTimeout  = 5 * time.Second
	maxStatusBytes = 4 << 20
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	addr := fset.String("http", defaultConfig().HTTP, "`address` of the node's HTTP endpoint")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	if err := checkHTTPAddr(*addr); err != nil {
		return badInput("status: --http %s: %v", textutil.Quote(*addr), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/status", nil)
	if err != nil {
		return badInput("status: --http %s: %v", textutil.Quote(*addr), err)
	}
	client := &http.Client{
		Timeout:       statusTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("status: no node answering at %s: %w", *addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s answered %s", *addr, textutil.Clip(textutil.Printable(resp.Status), textutil.MaxQuoted))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes+1))
	if err != nil {
		return fmt.Errorf("status: reading the answer of %s: %w", *addr, err)
	}
	if len(body) > maxStatusBytes {
		return fmt.Errorf("status: %s sent more than %s; not a status document", *addr, fsutil.SizeText(maxStatusBytes))
	}
	var doc statusDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			err = fmt.Errorf("not JSON at byte %d", syn.Offset)
		}
		return fmt.Errorf("status: %s sent an unreadable status: %s", *addr, textutil.Clip(textutil.Printable(err.Error()), textutil.MaxQuoted))
	}
	printStatus(stdout, doc)
	return nil
}

// printStatus prints doc for a terminal; every string from it goes through
// textutil.Printable (a node, or whatever answers at its address, must not be
// able to send escape sequences to the user's terminal).
func printStatus(w io.Writer, doc statusDoc) {
	fmt.Fprintf(w, "peer      %s\n", textutil.Printable(doc.PeerID))
	fmt.Fprintf(w, "health    %s\n", textutil.Printable(doc.Status))
	fmt.Fprintf(w, "tables   ")
	for _, name := range []string{"wan", "lan"} {
		if n, ok := doc.RoutingTables[name]; ok {
			fmt.Fprintf(w, " %s=%d", name, n)
		}
	}
	fmt.Fprintf(w, "\nconns     %d\n", doc.Connections)
	fmt.Fprintf(w, "trackers ")
	for _, s := range []string{"connected", "connecting", "retrying", "exhausted", "failed", "idle"} {
		fmt.Fprintf(w, " %s=%d", s, doc.Trackers[s])
	}
	fmt.Fprintln(w)
	if len(doc.TrackerTable) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tATTEMPTS\tFAILURES\tLAST ERROR")
	for _, r := range doc.TrackerTable {
		errText := []rune(printableCell(r.LastError))
		if len(errText) > 60 {
			errText = append(errText[:57], []rune("...")...)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", shortID(printableCell(r.Peer)), printableCell(r.State), r.Attempts, r.ConsecutiveFailures, string(errText))
	}
	tw.Flush()
}

// printableCell is s made printable for a tabwriter cell (tabs would shift
// the columns).
func printableCell(s string) string {
	return textutil.Printable(strings.ReplaceAll(s, "\t", " "))
}

func shortID(id string) string {
	if r := []rune(id); len(r) > 16 {
		return string(r[:6]) + "…" + string(r[len(r)-6:])
	}
	return id
}

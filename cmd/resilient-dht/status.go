package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"
)

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	addr := fset.String("http", defaultConfig().HTTP, "`address` of the node's HTTP endpoint")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+"/status", nil)
	if err != nil {
		return badInput("status: --http %q: %v", *addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status: no node answering at %s: %w", *addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s answered %s", *addr, resp.Status)
	}
	var doc statusDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("status: %s sent an unreadable status: %w", *addr, err)
	}
	printStatus(stdout, doc)
	return nil
}

func printStatus(w io.Writer, doc statusDoc) {
	fmt.Fprintf(w, "peer      %s\n", doc.PeerID)
	fmt.Fprintf(w, "health    %s\n", doc.Status)
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
		errText := r.LastError
		if len(errText) > 60 {
			errText = errText[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", shortID(r.Peer), r.State, r.Attempts, r.ConsecutiveFailures, errText)
	}
	tw.Flush()
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestHTTPEndpoints(t *testing.T) {
	m, err := resilience.NewConnectionManager()
	if err != nil {
		t.Fatal(err)
	}
	m.RecordSuccess("12D3KooWgood")
	m.RecordFailure("12D3KooWbad", errors.New("connection refused"))
	var healthy atomic.Bool
	status := func() statusDoc {
		counts, table := trackerTable(m)
		return statusDoc{PeerID: "me", Status: "degraded", Trackers: counts, TrackerTable: table, RoutingTables: map[string]int{"lan": 2}}
	}
	reg := prometheus.NewRegistry()
	tracer, _ := resilience.NewMetricsTracer(resilience.WithRegisterer(reg))
	tracer.RetriesExhausted()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveHTTP(ln, reg, healthy.Load, status)
	defer srv.Close(context.Background())
	base := "http://" + srv.Addr()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz while unhealthy: %d", code)
	}
	healthy.Store(true)
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz while healthy: %d %q", code, body)
	}
	code, body := get("/status")
	var doc statusDoc
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil {
		t.Fatalf("/status: %d %v\n%s", code, err, body)
	}
	if doc.Trackers["connected"] != 1 || doc.Trackers["retrying"] != 1 || len(doc.TrackerTable) != 2 {
		t.Errorf("/status trackers: %+v", doc)
	}
	if doc.TrackerTable[0].State != "retrying" || doc.TrackerTable[0].LastError != "connection refused" {
		t.Errorf("the most troubled peer is not first: %+v", doc.TrackerTable)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "libp2p_resilience_exhausted_total 1") {
		t.Errorf("/metrics lacks the resilience metrics:\n%s", body)
	}
	var out strings.Builder
	printStatus(&out, doc)
	for _, want := range []string{"health    degraded", "lan=2", "connected=1", "retrying", "connection refused"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// blockingCollector blocks every Collect until release is closed.
type blockingCollector struct {
	desc    *prometheus.Desc
	entered chan struct{}
	release chan struct{}
}

func (c *blockingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *blockingCollector) Collect(ch chan<- prometheus.Metric) {
	c.entered <- struct{}{}
	<-c.release
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
}

// TestHTTPLimits: idle keep-alive connections are closed after the idle
// timeout, and to make room for a new client when all slots are taken;
// clients beyond the cap of busy connections wait; oversized headers are
// refused; /metrics requests beyond the in-flight cap get 503 at once.
func TestHTTPLimits(t *testing.T) {
	col := &blockingCollector{desc: prometheus.NewDesc("test_blocking", "blocks", nil, nil), entered: make(chan struct{}, 8), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	serve := func(lim httpLimits) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := serveHTTPLimited(ln, lim, reg, func() bool { return true }, func() statusDoc { return statusDoc{} })
		t.Cleanup(func() { srv.Close(context.Background()) })
		return srv.Addr()
	}
	lim := defaultHTTPLimits
	lim.idle, lim.maxConns, lim.metricsInFlight, lim.maxHeader = time.Minute, 2, 1, 1<<10
	addr := serve(lim)
	shortIdle := lim
	shortIdle.idle = 300 * time.Millisecond

	// An idle keep-alive connection is closed by the server after the idle timeout.
	c, err := net.Dial("tcp", serve(shortIdle))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
	c.Close()

	// When every slot holds an idle keep-alive connection, a new client is
	// served and the connection idle longest is closed to make room.
	var idle []*bufio.Reader
	var idleConns []net.Conn
	for range lim.maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") // served, then idle
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz on a kept connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		idle, idleConns = append(idle, br), append(idleConns, c)
	}
	slow := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err = slow.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("a new client was not served while idle connections held every slot: %v", err)
	}
	resp.Body.Close()
	idleConns[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle[0].ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("the connection idle longest was not closed: %v", err)
	}
	idleConns[1].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := idle[1].ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a second idle connection was closed too: %v", err)
	}
	for _, c := range idleConns {
		c.Close()
	}

	// Connections in the middle of a request are not closed: a client beyond
	// the cap waits until one ends.
	var busy []net.Conn
	for range lim.maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\n") // headers never finished
		busy = append(busy, c)
	}
	time.Sleep(100 * time.Millisecond) // let the server take them
	fast := http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := fast.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a connection beyond the cap of %d was served", lim.maxConns)
	}
	for _, c := range busy {
		c.Close()
	}
	resp, err = slow.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("not served after the busy connections closed: %v", err)
	}
	resp.Body.Close()

	// Oversized request headers are refused.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 8<<10))
	if resp, err := slow.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("8 KiB header: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}

	// A second /metrics while one is in flight gets 503 at once.
	first := make(chan int, 1)
	go func() {
		resp, err := slow.Get("http://" + addr + "/metrics")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-col.entered
	resp, err = slow.Get("http://" + addr + "/metrics")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/metrics beyond the in-flight cap: %v %v, want 503", resp, err)
	}
	resp.Body.Close()
	close(col.release)
	if code := <-first; code != 200 {
		t.Fatalf("first /metrics: %d", code)
	}
}

// TestStatusClient: `status` prints no escape sequences from the node, refuses
// an endless answer, and takes an empty or malformed --http as bad input.
func TestStatusClient(t *testing.T) {
	serve := func(h http.HandlerFunc) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/status", h)
		srv := &http.Server{Handler: mux}
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close(); <-done })
		return ln.Addr().String()
	}
	evil := serve(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(statusDoc{
			PeerID: "12D3KooW\x1b]0;pwned\x07", Status: "healthy\x1b[2J\u202Eevil",
			TrackerTable: []trackerRow{{Peer: "peer\x1b[31m", State: "retrying\r", LastError: "dial\x1b[1Afailed\u200B"}},
		})
	})
	endless := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"peer_id": "`))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for range (maxStatusBytes / len(chunk)) + 4 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	teapot := serve(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })

	var out, errOut strings.Builder
	if code := realMain([]string{"status", "--http", evil}, &out, &errOut); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut.String())
	}
	for _, bad := range []string{"\x1b", "\x07", "\r", "\u202E", "\u200B"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("status output contains %q:\n%q", bad, out.String())
		}
	}
	if !strings.Contains(out.String(), "healthy\uFFFD[2J\uFFFDevil") {
		t.Errorf("status output lost the text around the escapes:\n%s", out.String())
	}

	errOut.Reset()
	code := realMain([]string{"status", "--http", endless}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "sent more than 4 MiB") {
		t.Fatalf("endless answer: exit %d: %s", code, errOut.String())
	}

	errOut.Reset()
	if code := realMain([]string{"status", "--http", teapot}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "418") {
		t.Fatalf("418: exit %d: %s", code, errOut.String())
	}

	for _, bad := range []string{"", "nonsense", "127.0.0.1:http"} {
		errOut.Reset()
		if code := realMain([]string{"status", "--http", bad}, &out, &errOut); code != 2 || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("status --http %q: exit %d: %q", bad, code, errOut.String())
		}
	}
}

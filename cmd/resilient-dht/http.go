package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// statusDoc is the JSON served at /status and printed by `resilient-dht status`.
type statusDoc struct {
	PeerID        string         `json:"peer_id"`
	Addrs         []string       `json:"addrs"`
	Healthy       bool           `json:"healthy"`
	Status        string         `json:"status"`
	Health        healthDoc      `json:"health"`
	RoutingTables map[string]int `json:"routing_tables"` // per DHT: "wan", "lan"
	Connections   int            `json:"connections"`
	Trackers      map[string]int `json:"trackers"` // count per state
	TrackerTable  []trackerRow   `json:"tracker_table"`
}

type trackerRow struct {
	Peer                string `json:"peer"`
	State               string `json:"state"`
	Attempts            uint32 `json:"attempts"`
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	LastError           string `json:"last_error,omitempty"`
	LastSuccess         string `json:"last_success,omitempty"`
}

// maxTrackerRows bounds the tracker table in /status: the most troubled first.
const maxTrackerRows = 200

func trackerTable(m *resilience.ConnectionManager) (map[string]int, []trackerRow) {
	st := m.Stats()
	counts := map[string]int{
		resilience.Idle.String(): st.Idle, resilience.Connecting.String(): st.Connecting,
		resilience.Connected.String(): st.Connected, resilience.Retrying.String(): st.Retrying,
		resilience.Failed.String(): st.Failed, resilience.Exhausted.String(): st.Exhausted,
	}
	all := m.All()
	rank := map[resilience.ConnectionState]int{resilience.Retrying: 0, resilience.Connecting: 1, resilience.Exhausted: 2, resilience.Failed: 3, resilience.Connected: 4, resilience.Idle: 5}
	sort.Slice(all, func(i, j int) bool {
		if a, b := rank[all[i].State], rank[all[j].State]; a != b {
			return a < b
		}
		return all[i].ConnectionID < all[j].ConnectionID
	})
	rows := make([]trackerRow, 0, min(len(all), maxTrackerRows))
	for _, t := range all[:min(len(all), maxTrackerRows)] {
		r := trackerRow{Peer: t.ConnectionID, State: t.State.String(), Attempts: t.AttemptCount, ConsecutiveFailures: t.ConsecutiveFailures}
		if t.LastError != nil {
			r.LastError = t.LastError.Error()
		}
		if !t.LastSuccess.IsZero() {
			r.LastSuccess = t.LastSuccess.UTC().Format(time.RFC3339)
		}
		rows = append(rows, r)
	}
	return counts, rows
}

// httpLimits keep clients of the HTTP endpoint from piling up connections,
// goroutines or memory.
type httpLimits struct {
	readHeader time.Duration // the request headers must arrive within this
	read       time.Duration // the whole request must arrive within this
	write      time.Duration // the answer must be written within this
	idle       time.Duration // a keep-alive connection without a request is closed after this
	maxHeader  int           // bytes of request headers
	// maxConns connections are open at once; when all are taken, the one
	// idle longest is closed to make room, and further clients wait in the
	// kernel's accept queue, holding no fd or goroutine (see connLimiter).
	maxConns int
	// metricsInFlight /metrics requests are served at once (a scrape renders
	// every metric in memory); more get 503 at once. A scrape that takes
	// longer than metricsTimeout gets 503.
	metricsInFlight int
	metricsTimeout  time.Duration
}

var defaultHTTPLimits = httpLimits{
	readHeader:      5 * time.Second,
	read:            10 * time.Second,
	write:           30 * time.Second,
	idle:            30 * time.Second,
	maxHeader:       8 << 10,
	maxConns:        64,
	metricsInFlight: 4,
	metricsTimeout:  10 * time.Second,
}

// httpServer serves /metrics, /healthz and /status.
type httpServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// serveHTTP serves on ln in a goroutine that Close stops, within
// defaultHTTPLimits.
func serveHTTP(ln net.Listener, reg *prometheus.Registry, healthy func() bool, status func() statusDoc) *httpServer {
	return serveHTTPLimited(ln, defaultHTTPLimits, reg, healthy, status)
}

func serveHTTPLimited(ln net.Listener, lim httpLimits, reg *prometheus.Registry, healthy func() bool, status func() statusDoc) *httpServer {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:            reg,
		MaxRequestsInFlight: lim.metricsInFlight,
		Timeout:             lim.metricsTimeout,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if healthy() {
			fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "unhealthy")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(status())
	})
	s := &httpServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: lim.readHeader,
			ReadTimeout:       lim.read,
			WriteTimeout:      lim.write,
			IdleTimeout:       lim.idle,
			MaxHeaderBytes:    lim.maxHeader,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	limited := newConnLimiter(ln, lim.maxConns)
	s.srv.ConnState = limited.connState
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(limited); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warnw("http server stopped", "err", err)
		}
	}()
	return s
}

// Addr returns the address the server listens on.
func (s *httpServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server, waiting at most until ctx ends.
func (s *httpServer) Close(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

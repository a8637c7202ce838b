package resilience_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestProfiles(t *testing.T) {
	tests := []struct {
		name string
		got  resilience.RetryConfig
		want resilience.RetryConfig
	}{
		{"default", resilience.DefaultRetryConfig(), resilience.RetryConfig{MaxAttempts: 5, InitialDelay: 500 * time.Millisecond, MaxDelay: 30 * time.Second, BackoffMultiplier: 2, JitterFactor: 0.1, ResetOnSuccess: true}},
		{"webrtc", resilience.ForWebRTC(), resilience.RetryConfig{MaxAttempts: 3, InitialDelay: time.Second, MaxDelay: 15 * time.Second, BackoffMultiplier: 2, JitterFactor: 0.2, ResetOnSuccess: true}},
		{"dht-bootstrap", resilience.ForDHTBootstrap(), resilience.RetryConfig{MaxAttempts: 5, InitialDelay: 2 * time.Second, MaxDelay: 60 * time.Second, BackoffMultiplier: 2, JitterFactor: 0.15, ResetOnSuccess: true}},
		{"dht-peer", resilience.ForDHTPeer(), resilience.RetryConfig{MaxAttempts: 3, InitialDelay: time.Second, MaxDelay: 30 * time.Second, BackoffMultiplier: 2, JitterFactor: 0.1, ResetOnSuccess: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %+v, want %+v", tt.got, tt.want)
			}
			if err := tt.got.Validate(); err != nil {
				t.Fatalf("profile invalid: %v", err)
			}
		})
	}
	if resilience.DefaultMaxRetries != 5 || resilience.DefaultInitialDelay != 500*time.Millisecond ||
		resilience.DefaultMaxDelay != 30*time.Second || resilience.DefaultBackoffMultiplier != 2.0 ||
		resilience.DefaultJitterFactor != 0.1 {
		t.Fatal("seed constants changed")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*resilience.RetryConfig)
		field string // "" = valid
	}{
		{"default", func(*resilience.RetryConfig) {}, ""},
		{"unlimited", func(c *resilience.RetryConfig) { c.MaxAttempts = 0 }, ""},
		{"zero delays", func(c *resilience.RetryConfig) { c.InitialDelay, c.MaxDelay = 0, 0 }, ""},
		{"multiplier 1", func(c *resilience.RetryConfig) { c.BackoffMultiplier = 1 }, ""},
		{"jitter 1", func(c *resilience.RetryConfig) { c.JitterFactor = 1 }, ""},
		{"unlimited without delay", func(c *resilience.RetryConfig) { c.MaxAttempts, c.InitialDelay = 0, 0 }, "InitialDelay"},
		{"negative initial", func(c *resilience.RetryConfig) { c.InitialDelay = -1 }, "InitialDelay"},
		{"negative max", func(c *resilience.RetryConfig) { c.InitialDelay, c.MaxDelay = -2, -1 }, "InitialDelay"},
		{"max below initial", func(c *resilience.RetryConfig) { c.MaxDelay = c.InitialDelay - 1 }, "MaxDelay"},
		{"multiplier NaN", func(c *resilience.RetryConfig) { c.BackoffMultiplier = math.NaN() }, "BackoffMultiplier"},
		{"multiplier Inf", func(c *resilience.RetryConfig) { c.BackoffMultiplier = math.Inf(1) }, "BackoffMultiplier"},
		{"multiplier < 1", func(c *resilience.RetryConfig) { c.BackoffMultiplier = 0.5 }, "BackoffMultiplier"},
		{"jitter NaN", func(c *resilience.RetryConfig) { c.JitterFactor = math.NaN() }, "JitterFactor"},
		{"jitter -Inf", func(c *resilience.RetryConfig) { c.JitterFactor = math.Inf(-1) }, "JitterFactor"},
		{"jitter < 0", func(c *resilience.RetryConfig) { c.JitterFactor = -0.1 }, "JitterFactor"},
		{"jitter > 1", func(c *resilience.RetryConfig) { c.JitterFactor = 1.5 }, "JitterFactor"},
		{"unknown strategy", func(c *resilience.RetryConfig) { c.Jitter = 99 }, "Jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := resilience.DefaultRetryConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, resilience.ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.field+" =") {
				t.Fatalf("error %q does not name field %s", err, tt.field)
			}
			if _, err := resilience.NewConnectionTracker("x", cfg); err == nil {
				t.Fatal("NewConnectionTracker accepted an invalid config")
			}
			if _, err := resilience.NewConnectionManager(resilience.WithDefaultConfig(cfg)); err == nil {
				t.Fatal("NewConnectionManager accepted an invalid config")
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	t.Run("seed names in milliseconds", func(t *testing.T) {
		b, err := json.Marshal(resilience.ForDHTBootstrap())
		if err != nil {
			t.Fatal(err)
		}
		want := `{"max_attempts":5,"initial_delay_ms":2000,"max_delay_ms":60000,"backoff_multiplier":2,"jitter_factor":0.15,"reset_on_success":true,"jitter":"proportional"}`
		if string(b) != want {
			t.Fatalf("got %s\nwant %s", b, want)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		in := resilience.ForWebRTC()
		in.Jitter = resilience.JitterDecorrelated
		b, _ := json.Marshal(in)
		var out resilience.RetryConfig
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out != in {
			t.Fatalf("got %+v, want %+v", out, in)
		}
	})
	t.Run("seed file overrides only what it names", func(t *testing.T) {
		cfg := resilience.DefaultRetryConfig()
		if err := json.Unmarshal([]byte(`{"max_attempts": 0, "initial_delay_ms": 1000, "max_delay_ms": 60000}`), &cfg); err != nil {
			t.Fatal(err)
		}
		want := resilience.DefaultRetryConfig()
		want.MaxAttempts, want.InitialDelay, want.MaxDelay = 0, time.Second, time.Minute
		if cfg != want {
			t.Fatalf("got %+v, want %+v", cfg, want)
		}
	})
	bad := []struct{ name, in, mention string }{
		{"unknown field", `{"max_attempt": 3}`, "max_attempt"},
		{"negative delay", `{"initial_delay_ms": -5}`, "initial_delay_ms"},
		{"huge delay", `{"max_delay_ms": 9223372036854775807}`, "max_delay_ms"},
		{"negative attempts", `{"max_attempts": -1}`, "max_attempts"},
		{"jitter out of range", `{"jitter_factor": 2}`, "JitterFactor"},
		{"bad strategy", `{"jitter": "wobbly"}`, "wobbly"},
		{"max below initial", `{"initial_delay_ms": 5000, "max_delay_ms": 100}`, "MaxDelay"},
		{"not an object", `[1,2]`, "cannot unmarshal"},
		{"trailing", `{} {}`, "after top-level value"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			cfg := resilience.DefaultRetryConfig()
			before := cfg
			err := json.Unmarshal([]byte(tt.in), &cfg)
			if err == nil {
				t.Fatal("accepted bad input")
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("error %q does not mention %q", err, tt.mention)
			}
			if cfg != before {
				t.Fatalf("config changed on error: %+v", cfg)
			}
		})
	}
}

// FuzzRetryConfigJSON: no input panics, a rejected input leaves the config as it
// was, and an accepted one is valid and survives a round trip.
func FuzzRetryConfigJSON(f *testing.F) {
	f.Add([]byte(`{"max_attempts": 5, "initial_delay_ms": 2000, "max_delay_ms": 60000, "backoff_multiplier": 2.0, "jitter_factor": 0.15}`))
	f.Add([]byte(`{"max_attempts": 0, "initial_delay_ms": 0}`))
	f.Add([]byte(`{"jitter": "decorrelated", "max_delay_ms": 9223372036854}`))
	f.Add([]byte(`{"backoff_multiplier": 1e309}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := resilience.DefaultRetryConfig()
		err := json.Unmarshal(data, &cfg)
		if err != nil {
			if cfg != resilience.DefaultRetryConfig() {
				t.Fatalf("rejected input %q changed the config: %+v", data, cfg)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config from %q: %v", data, err)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var back resilience.RetryConfig
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip of %s: %v", b, err)
		}
		// Delays are written in whole milliseconds.
		cfg.InitialDelay, cfg.MaxDelay = cfg.InitialDelay.Truncate(time.Millisecond), cfg.MaxDelay.Truncate(time.Millisecond)
		if back != cfg {
			t.Fatalf("round trip: %+v became %+v", cfg, back)
		}
	})
}

package bootstrap

import (
	"fmt"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// Defaults of the Bootstrapper's options.
const (
	// DefaultMinPeers is the routing-table size Bootstrap and Recover wait
	// for (WithMinPeers).
	DefaultMinPeers = 4
	// DefaultSaveInterval is how often the backup peers are saved
	// (WithSaveInterval); kubo saves hourly too.
	DefaultSaveInterval = time.Hour
)

// ProtectTag is the connection-manager tag under which the Bootstrapper
// protects connected bootstrap peers (connmgr.ConnManager.Protect).
const ProtectTag = "bootstrap"

// Option configures New.
type Option func(*config) error

type config struct {
	minPeers     int
	retry        resilience.RetryConfig
	backupFile   string
	saveInterval time.Duration
}

func defaultConfig() config {
	return config{
		minPeers:     DefaultMinPeers,
		retry:        resilience.ForDHTBootstrap(),
		saveInterval: DefaultSaveInterval,
	}
}

// WithMinPeers sets the routing-table size (in peers) that Bootstrap and
// Recover wait for after connecting. Default: DefaultMinPeers (4). Must be
// >= 1.
func WithMinPeers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("bootstrap: WithMinPeers(%d): n must be >= 1", n)
		}
		c.minPeers = n
		return nil
	}
}

// WithRetryConfig sets the retry profile with which bootstrap and backup
// peers are dialled. Default: resilience.ForDHTBootstrap() (5 attempts,
// 2 s initial delay doubling up to 60 s, jitter factor 0.15). The config
// must pass RetryConfig.Validate. With MaxAttempts 0 (unlimited) a peer
// that stays unreachable keeps Bootstrap and Recover running until their
// ctx ends: give them a ctx with a deadline.
//
// The initial delay also decides when backup peers are dialled: as soon as
// a bootstrap peer's round fails, or once InitialDelay has passed with a
// bootstrap peer still not connected.
func WithRetryConfig(cfg resilience.RetryConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("bootstrap: WithRetryConfig: %w", err)
		}
		c.retry = cfg
		return nil
	}
}

// WithBackupFile sets the JSON file in which backup peers are kept across
// restarts: loaded by New, saved every WithSaveInterval, after a
// successful Bootstrap or Recover, and on Close. A missing parent
// directory is created (mode 0700). Default: none (no backup peers).
func WithBackupFile(path string) Option {
	return func(c *config) error {
		if path == "" {
			return fmt.Errorf("bootstrap: WithBackupFile: path must not be empty")
		}
		c.backupFile = path
		return nil
	}
}

// WithSaveInterval sets how often the backup peers are saved while the
// Bootstrapper runs. Default: DefaultSaveInterval (1 h). Must be > 0. It
// has no effect without WithBackupFile.
func WithSaveInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("bootstrap: WithSaveInterval(%v): interval must be > 0", d)
		}
		c.saveInterval = d
		return nil
	}
}

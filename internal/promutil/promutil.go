// Package promutil holds the one Prometheus helper the module's metrics tracers
// share.
package promutil

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the collector already registered
// under the same descriptor, so that several tracers (one per host, manager or
// monitor) in one process share their metrics instead of failing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// Config is what the packages' MetricsOption set.
type Config struct{ Reg prometheus.Registerer }

// Option is the MetricsOption of the packages' NewMetricsTracer.
type Option func(*Config) error

// WithRegisterer is the packages' WithRegisterer: reg must not be nil.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *Config) error {
		if reg == nil {
			return errors.New("WithRegisterer(nil): a registerer is needed")
		}
		c.Reg = reg
		return nil
	}
}

// Apply applies opts to the default config (prometheus.DefaultRegisterer);
// pkg names the caller's package in errors.
func Apply(pkg string, opts []Option) (Config, error) {
	cfg := Config{Reg: prometheus.DefaultRegisterer}
	for i, o := range opts {
		if o == nil {
			return cfg, fmt.Errorf("%s: NewMetricsTracer: opts[%d] is nil", pkg, i)
		}
		if err := o(&cfg); err != nil {
			return cfg, fmt.Errorf("%s: NewMetricsTracer: %w", pkg, err)
		}
	}
	return cfg, nil
}

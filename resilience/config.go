package resilience

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// The seed's defaults.
const (
	// DefaultMaxRetries is the default total number of attempts, the first one included.
	DefaultMaxRetries uint32 = 5
	// DefaultInitialDelay is the default delay before the first retry.
	DefaultInitialDelay = 500 * time.Millisecond
	// DefaultMaxDelay caps the un-jittered delay between attempts.
	DefaultMaxDelay = 30 * time.Second
	// DefaultBackoffMultiplier is the default growth factor between consecutive delays.
	DefaultBackoffMultiplier = 2.0
	// DefaultJitterFactor is the default width of the proportional jitter band (10%: ±5%).
	DefaultJitterFactor = 0.1
)

// RetryConfig describes how often and how patiently a connection is retried.
//
// The zero value is not useful; start from DefaultRetryConfig or a profile and change
// fields. A RetryConfig is a plain value: copy it freely, it is safe for concurrent
// reads.
type RetryConfig struct {
	// MaxAttempts is the total number of attempts, the first one included.
	// 0 means unlimited: the caller's context must be able to end.
	MaxAttempts uint32
	// InitialDelay is the delay before the first retry (retry n = 1).
	InitialDelay time.Duration
	// MaxDelay caps the un-jittered delay. It must be >= InitialDelay.
	MaxDelay time.Duration
	// BackoffMultiplier is the growth factor between consecutive delays (>= 1).
	BackoffMultiplier float64
	// JitterFactor is the width of the random band for JitterProportional,
	// in [0, 1]: the delay is base * (1 ± JitterFactor/2). Other strategies ignore it.
	JitterFactor float64
	// ResetOnSuccess resets ConnectionTracker.AttemptCount on success, so
	// MaxAttempts applies per outage instead of over the tracker's lifetime.
	ResetOnSuccess bool
	// Jitter selects how delays are randomized. The zero value is JitterProportional.
	Jitter JitterStrategy
}

// DefaultRetryConfig returns the seed's default configuration:
// 5 attempts, 500ms initial delay, 30s cap, multiplier 2, 10% jitter, reset on success.
func DefaultRetryConfig() RetryConfig {
	return RetryConfig{
		MaxAttempts:       DefaultMaxRetries,
		InitialDelay:      DefaultInitialDelay,
		MaxDelay:          DefaultMaxDelay,
		BackoffMultiplier: DefaultBackoffMultiplier,
		JitterFactor:      DefaultJitterFactor,
		ResetOnSuccess:    true,
	}
}

// ForWebRTC is tuned for WebRTC peer connections, which run their own ICE retries:
// 3 attempts, 1s initial delay, 15s cap, multiplier 2, 20% jitter.
func ForWebRTC() RetryConfig {
	return RetryConfig{
		MaxAttempts:       3,
		InitialDelay:      time.Second,
		MaxDelay:          15 * time.Second,
		BackoffMultiplier: 2.0,
		JitterFactor:      0.2,
		ResetOnSuccess:    true,
	}
}

// ForDHTBootstrap retries bootstrap peers, which a node cannot do without:
// 5 attempts, 2s initial delay, 60s cap, multiplier 2, 15% jitter.
func ForDHTBootstrap() RetryConfig {
	return RetryConfig{
		MaxAttempts:       5,
		InitialDelay:      2 * time.Second,
		MaxDelay:          60 * time.Second,
		BackoffMultiplier: 2.0,
		JitterFactor:      0.15,
		ResetOnSuccess:    true,
	}
}

// ForDHTPeer is a balanced profile for ordinary DHT peers:
// 3 attempts, 1s initial delay, 30s cap, multiplier 2, 10% jitter.
func ForDHTPeer() RetryConfig {
	return RetryConfig{
		MaxAttempts:       3,
		InitialDelay:      time.Second,
		MaxDelay:          30 * time.Second,
		BackoffMultiplier: 2.0,
		JitterFactor:      0.1,
		ResetOnSuccess:    true,
	}
}

// Validate reports the first invalid field, by name. A config that passes never
// produces a negative, NaN or overflowing delay.
func (c RetryConfig) Validate() error {
	switch {
	case c.InitialDelay < 0:
		return fieldError("InitialDelay", c.InitialDelay, "must not be negative")
	case c.MaxDelay < 0:
		return fieldError("MaxDelay", c.MaxDelay, "must not be negative")
	case c.MaxAttempts == 0 && c.InitialDelay == 0:
		return fieldError("InitialDelay", c.InitialDelay, "must be positive when MaxAttempts = 0 (unlimited): a zero delay would retry in a busy loop")
	case c.MaxDelay < c.InitialDelay:
		return fieldError("MaxDelay", c.MaxDelay, fmt.Sprintf("must be >= InitialDelay (%v)", c.InitialDelay))
	case math.IsNaN(c.BackoffMultiplier) || math.IsInf(c.BackoffMultiplier, 0):
		return fieldError("BackoffMultiplier", c.BackoffMultiplier, "must be a finite number")
	case c.BackoffMultiplier < 1:
		return fieldError("BackoffMultiplier", c.BackoffMultiplier, "must be >= 1")
	case math.IsNaN(c.JitterFactor) || math.IsInf(c.JitterFactor, 0):
		return fieldError("JitterFactor", c.JitterFactor, "must be a finite number")
	case c.JitterFactor < 0 || c.JitterFactor > 1:
		return fieldError("JitterFactor", c.JitterFactor, "must be in [0, 1]")
	case c.Jitter >= jitterStrategyCount:
		return fieldError("Jitter", c.Jitter, "unknown jitter strategy")
	}
	return nil
}

// exhausted reports whether attempts used up MaxAttempts.
func (c *RetryConfig) exhausted(attempts uint32) bool {
	return c.MaxAttempts != 0 && attempts >= c.MaxAttempts
}

func fieldError(field string, value any, why string) error {
	return fmt.Errorf("%w: %s = %v %s", ErrInvalidConfig, field, value, why)
}

// retryConfigJSON is the seed's wire format: snake_case names, delays in milliseconds.
type retryConfigJSON struct {
	MaxAttempts       *uint32  `json:"max_attempts,omitempty"`
	InitialDelayMs    *int64   `json:"initial_delay_ms,omitempty"`
	MaxDelayMs        *int64   `json:"max_delay_ms,omitempty"`
	BackoffMultiplier *float64 `json:"backoff_multiplier,omitempty"`
	JitterFactor      *float64 `json:"jitter_factor,omitempty"`
	ResetOnSuccess    *bool    `json:"reset_on_success,omitempty"`
	Jitter            *string  `json:"jitter,omitempty"`
}

// MarshalJSON writes the seed's field names with delays in whole milliseconds.
func (c RetryConfig) MarshalJSON() ([]byte, error) {
	initial, maxDelay := c.InitialDelay.Milliseconds(), c.MaxDelay.Milliseconds()
	jitter := c.Jitter.String()
	return json.Marshal(retryConfigJSON{
		MaxAttempts:       &c.MaxAttempts,
		InitialDelayMs:    &initial,
		MaxDelayMs:        &maxDelay,
		BackoffMultiplier: &c.BackoffMultiplier,
		JitterFactor:      &c.JitterFactor,
		ResetOnSuccess:    &c.ResetOnSuccess,
		Jitter:            &jitter,
	})
}

// UnmarshalJSON reads the seed's format. Fields that are absent keep the value
// the receiver already holds, so decoding into DefaultRetryConfig() (or a profile)
// overrides only what the file names. The result is validated; unknown fields and
// out-of-range values are errors naming the field.
func (c *RetryConfig) UnmarshalJSON(data []byte) error {
	var in retryConfigJSON
	if err := strictUnmarshal(data, &in); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	out := *c
	if in.MaxAttempts != nil {
		out.MaxAttempts = *in.MaxAttempts
	}
	if in.InitialDelayMs != nil {
		d, err := millis("initial_delay_ms", *in.InitialDelayMs)
		if err != nil {
			return err
		}
		out.InitialDelay = d
	}
	if in.MaxDelayMs != nil {
		d, err := millis("max_delay_ms", *in.MaxDelayMs)
		if err != nil {
			return err
		}
		out.MaxDelay = d
	}
	if in.BackoffMultiplier != nil {
		out.BackoffMultiplier = *in.BackoffMultiplier
	}
	if in.JitterFactor != nil {
		out.JitterFactor = *in.JitterFactor
	}
	if in.ResetOnSuccess != nil {
		out.ResetOnSuccess = *in.ResetOnSuccess
	}
	if in.Jitter != nil {
		j, err := ParseJitterStrategy(*in.Jitter)
		if err != nil {
			return err
		}
		out.Jitter = j
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*c = out
	return nil
}

func millis(field string, ms int64) (time.Duration, error) {
	const maxMs = math.MaxInt64 / int64(time.Millisecond)
	if ms < 0 || ms > maxMs {
		return 0, fmt.Errorf("%w: %s = %d must be in [0, %d]", ErrInvalidConfig, field, ms, maxMs)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

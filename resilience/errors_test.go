package resilience_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

type customIs struct{}

func (customIs) Error() string        { return "custom" }
func (customIs) Is(target error) bool { return target == resilience.ErrPermanent }

func TestIsPermanent(t *testing.T) {
	p := resilience.Permanent(errTest)
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errTest, false},
		{p, true},
		{fmt.Errorf("dial: %w", p), true},
		{errors.Join(errTest, fmt.Errorf("x: %w", p)), true},
		{errors.Join(errTest, errTest), false},
		{resilience.ErrPermanent, true},
		{customIs{}, true},
		{fmt.Errorf("wrapped: %w", customIs{}), true},
		{resilience.RetryAfter(1, p), true},
		{resilience.RetryAfter(1, errTest), false},
	}
	for i, tt := range tests {
		if got := resilience.IsPermanent(tt.err); got != tt.want {
			t.Errorf("%d: IsPermanent(%v) = %v, want %v", i, tt.err, got, tt.want)
		}
		if got := errors.Is(tt.err, resilience.ErrPermanent); got != tt.want {
			t.Errorf("%d: errors.Is disagrees: %v", i, got)
		}
		if tt.err != nil && !errors.Is(tt.err, tt.err) {
			t.Errorf("%d: wrapper hides itself", i)
		}
	}
	if resilience.Permanent(nil) != nil || resilience.RetryAfter(5, nil) != nil {
		t.Error("wrapping nil must give nil")
	}
	if d, ok := resilience.RetryAfterDelay(fmt.Errorf("x: %w", resilience.RetryAfter(5, errTest))); !ok || d != 5 {
		t.Errorf("RetryAfterDelay = %v, %v", d, ok)
	}
}

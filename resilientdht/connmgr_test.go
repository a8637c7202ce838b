package resilientdht_test

import (
	"strings"
	"testing"

	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

func TestNewConnManager(t *testing.T) {
	cm, err := resilientdht.NewConnManager(resilientdht.DefaultConnsLow, resilientdht.DefaultConnsHigh)
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	info := cm.GetInfo()
	if info.LowWater != 32 || info.HighWater != 96 || info.GracePeriod != resilientdht.DefaultConnsGrace {
		t.Errorf("limits %d/%d grace %v: want 32/96 grace %v", info.LowWater, info.HighWater, info.GracePeriod, resilientdht.DefaultConnsGrace)
	}
	for _, c := range []struct{ low, high int }{{0, 10}, {11, 10}, {-1, 5}} {
		if cm, err := resilientdht.NewConnManager(c.low, c.high); err == nil {
			cm.Close()
			t.Errorf("NewConnManager(%d, %d): no error", c.low, c.high)
		} else if !strings.Contains(err.Error(), "connection limits") {
			t.Errorf("NewConnManager(%d, %d): %v: does not name the limits", c.low, c.high, err)
		}
	}
}

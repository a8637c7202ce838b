package simnet_test

import (
	"bytes"
	"image/color"
	"image/png"
	"testing"

	"github.com/chiral-network/go-libp2p-resilience/internal/simnet"
)

// Plot draws a decodable PNG with each series in its own colour, and
// rejects what it cannot draw.
func TestPlot(t *testing.T) {
	var buf bytes.Buffer
	err := simnet.Plot(&buf, "test 1/2", 10, []simnet.Series{
		{Label: "up", Values: []int{0, 2, 5, 10}},
		{Label: "flat", Values: []int{3, 3, 3, 3, 3, 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Fatalf("image %v: too small", b)
	}
	want := map[color.RGBA]bool{{0xd6, 0x27, 0x28, 0xff}: false, {0x1f, 0x77, 0xb4, 0xff}: false}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}
			if _, ok := want[c]; ok {
				want[c] = true
			}
		}
	}
	for c, seen := range want {
		if !seen {
			t.Errorf("series colour %v not drawn", c)
		}
	}
	for _, bad := range []struct {
		yMax   int
		series []simnet.Series
	}{{0, []simnet.Series{{Values: []int{1}}}}, {5, nil}} {
		if err := simnet.Plot(&bytes.Buffer{}, "", bad.yMax, bad.series); err == nil {
			t.Errorf("Plot(yMax %d, %d series): no error", bad.yMax, len(bad.series))
		}
	}
}

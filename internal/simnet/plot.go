package simnet

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strconv"
	"strings"
)

// Series is one line of a Plot: Values[i] is the value at second i.
type Series struct {
	Label  string
	Values []int
}

// Plot sizes, in pixels.
const (
	plotW, plotH         = 960, 540
	marginL, marginR     = 70, 20
	marginT, marginB     = 40, 50
	glyphW, glyphH, zoom = 3, 5, 2
)

// palette holds the colours of the series, in order; they repeat.
var palette = []color.RGBA{
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x94, 0x67, 0xbd, 0xff}, // purple
	{0x8c, 0x56, 0x4b, 0xff}, // brown
}

// Plot writes a PNG line chart of series over time to w: x is seconds, y is
// the value (healthy nodes), from 0 to yMax. The title, axis labels and
// legend use a built-in 3×5 pixel font (letters, digits and a few signs), so
// the package needs no font or plotting dependency.
func Plot(w io.Writer, title string, yMax int, series []Series) error {
	if yMax <= 0 {
		return fmt.Errorf("simnet: Plot: yMax %d: must be positive", yMax)
	}
	if len(series) == 0 {
		return errors.New("simnet: Plot: no series")
	}
	xMax := 1
	for _, s := range series {
		xMax = max(xMax, len(s.Values)-1)
	}
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	black := color.RGBA{0, 0, 0, 0xff}
	grey := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	x0, y0, x1, y1 := marginL, plotH-marginB, plotW-marginR, marginT
	px := func(sec int) int { return x0 + sec*(x1-x0)/xMax }
	py := func(v int) int { return y0 - v*(y0-y1)/yMax }

	for _, v := range ticks(yMax) {
		line(img, x0, py(v), x1, py(v), grey)
		s := strconv.Itoa(v)
		text(img, x0-8-textWidth(s), py(v)-glyphH*zoom/2, s, black)
	}
	for _, sec := range ticks(xMax) {
		line(img, px(sec), y0, px(sec), y1, grey)
		s := strconv.Itoa(sec)
		text(img, px(sec)-textWidth(s)/2, y0+8, s, black)
	}
	line(img, x0, y0, x1, y0, black)
	line(img, x0, y0, x0, y1, black)
	text(img, (x0+x1-textWidth("SECONDS"))/2, y0+26, "SECONDS", black)
	text(img, 8, y1-26, "HEALTHY NODES", black)
	text(img, (plotW-textWidth(title))/2, 10, title, black)

	for i := len(series) - 1; i >= 0; i-- { // the first series on top
		s, c := series[i], palette[i%len(palette)]
		for sec := 1; sec < len(s.Values); sec++ {
			a, b := min(s.Values[sec-1], yMax), min(s.Values[sec], yMax)
			line(img, px(sec-1), py(a), px(sec), py(b), c)
			line(img, px(sec-1), py(a)+1, px(sec), py(b)+1, c)
		}
		ly := y0 - 20 - (len(series)-1-i)*16
		lx := x1 - 30 - textWidth(s.Label)
		fill(img, image.Rect(lx-26, ly+3, lx-6, ly+6), c)
		text(img, lx, ly, s.Label, black)
	}
	return png.Encode(w, img)
}

// ticks returns about 5 to 10 round values from 0 to n.
func ticks(n int) []int {
	step := 1 // 1, 2, 5, 10, 20, 50, ...
	for n/step > 10 {
		if strconv.Itoa(step)[0] == '2' {
			step = step / 2 * 5
		} else {
			step *= 2
		}
	}
	var out []int
	for v := 0; v <= n; v += step {
		out = append(out, v)
	}
	return out
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws from (xa, ya) to (xb, yb) (Bresenham).
func line(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA) {
	dx, dy := abs(xb-xa), -abs(yb-ya)
	sx, sy := sign(xb-xa), sign(yb-ya)
	e := dx + dy
	for {
		img.SetRGBA(xa, ya, c)
		if xa == xb && ya == yb {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			xa += sx
		}
		if e2 <= dx {
			e += dx
			ya += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func textWidth(s string) int { return len(s) * (glyphW + 1) * zoom }

// text draws s (upper-cased; unknown characters as blanks) with its top
// left corner at (x, y).
func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	for i, r := range strings.ToUpper(s) {
		g, ok := font[r]
		if !ok {
			continue
		}
		for row := range glyphH {
			for col := range glyphW {
				if g[row*glyphW+col] != '#' {
					continue
				}
				ox, oy := x+i*(glyphW+1)*zoom+col*zoom, y+row*zoom
				fill(img, image.Rect(ox, oy, ox+zoom, oy+zoom), c)
			}
		}
	}
}

// font is a 3×5 pixel font: each glyph is 5 rows of 3 cells, '#' set.
var font = map[rune]string{
	'0': "####.##.##.####", '1': ".#.##..#..#.###", '2': "###..#####..###",
	'3': "###..#.##..####", '4': "#.##.####..#..#", '5': "####..###..####",
	'6': "####..####.####", '7': "###..#.#..#..#.", '8': "####.#####.####",
	'9': "####.####..####", 'A': ".#.#.#####.##.#", 'B': "##.#.###.#.###.",
	'C': ".###..#..#...##", 'D': "##.#.##.##.###.", 'E': "####..##.#..###",
	'F': "####..##.#..#..", 'G': ".###..#.##.#.##", 'H': "#.##.#####.##.#",
	'I': "###.#..#..#.###", 'J': "..#..#..##.#.#.", 'K': "#.##.###.#.##.#",
	'L': "#..#..#..#..###", 'M': "#.########.##.#", 'N': "##.#.##.##.##.#",
	'O': ".#.#.##.##.#.#.", 'P': "##.#.###.#..#..", 'Q': ".#.#.##.###..##",
	'R': "##.#.###.#.##.#", 'S': ".###...#...###.", 'T': "###.#..#..#..#.",
	'U': "#.##.##.##.####", 'V': "#.##.##.##.#.#.", 'W': "#.##.########.#",
	'X': "#.##.#.#.#.##.#", 'Y': "#.##.#.#..#..#.", 'Z': "###..#.#.#..###",
	'.': ".............#.", ',': "..........#.#..", ':': "....#.....#....",
	'-': "......###......", '/': "..#..#.#.#..#..", '%': "#.#..#.#.#..#.#",
	'(': ".#.#..#..#...#.", ')': ".#...#..#..#.#.", '+': "....#.###.#....",
	'=': "...###...###...", '\'': ".#..#..........", '>': "#...#...#.#.#..",
	'<': "..#.#.#...#...#",
}

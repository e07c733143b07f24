package tui

import (
	"math"
	"strings"
)

// ringSize is how many points a sparkline keeps: one a second, a minute.
const ringSize = 60

// ring is a fixed-size history of one figure, oldest first when read.
type ring struct {
	vals [ringSize]float64
	n    int // points written so far (saturates at ringSize for reading)
	next int
}

// push appends v, dropping the oldest point once full.
func (r *ring) push(v float64) {
	r.vals[r.next] = v
	r.next = (r.next + 1) % ringSize
	if r.n < ringSize {
		r.n++
	}
}

// values returns the points oldest first.
func (r *ring) values() []float64 {
	out := make([]float64, 0, r.n)
	start := (r.next - r.n + ringSize) % ringSize
	for i := range r.n {
		out = append(out, r.vals[(start+i)%ringSize])
	}
	return out
}

// last is the newest point, 0 when empty.
func (r *ring) last() float64 {
	if r.n == 0 {
		return 0
	}
	return r.vals[(r.next-1+ringSize)%ringSize]
}

var sparkGlyphs = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width values scaled from 0 to their maximum,
// right-aligned and padded with spaces so columns line up. An all-zero
// series draws as a flat ▁ line: idle is visible, not blank.
func sparkline(vals []float64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	hi := 0.0
	for _, v := range vals {
		hi = math.Max(hi, v)
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width-len(vals)))
	for _, v := range vals {
		i := 0
		if hi > 0 && v > 0 {
			i = int(math.Round(v / hi * float64(len(sparkGlyphs)-1)))
			i = max(1, min(i, len(sparkGlyphs)-1)) // anything above zero shows
		}
		b.WriteRune(sparkGlyphs[i])
	}
	return b.String()
}

package tui

import (
	"math"
	"strings"
	"time"

	"github.com/cutover/cutover/engine"
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

// series is the last minute of one version's figures.
type series struct {
	rps, errs, p99 ring
	last           engine.Totals
	hasLast        bool
}

// observe pushes one point from a version's router figures: its 10s
// window where the router reports one, or else the change in its
// cumulative totals over the every since the last point.
func (se *series) observe(vs engine.VersionStats, every time.Duration) {
	if w, ok := vs.Windows["10s"]; ok {
		se.rps.push(w.RPS)
		se.errs.push(w.ErrorRate)
		se.p99.push(w.P99Ms)
	} else if se.hasLast {
		d := vs.Totals.Requests - se.last.Requests
		bad := (vs.Totals.Class5xx + vs.Totals.ProxyErrors) - (se.last.Class5xx + se.last.ProxyErrors)
		se.rps.push(float64(max(0, d)) / max(every.Seconds(), 0.001))
		if d > 0 {
			se.errs.push(float64(bad) / float64(d))
		} else {
			se.errs.push(0)
		}
		se.p99.push(p99Delta(se.last.Latency, vs.Totals.Latency))
	}
	se.last, se.hasLast = vs.Totals, true
}

// p99Delta is the 99th percentile of the responses between two cumulative
// histograms, at the upper bound of its bucket.
func p99Delta(a, b engine.Histogram) float64 {
	if len(b.Counts) == 0 {
		return 0
	}
	counts := make([]int64, len(b.Counts))
	for i := range counts {
		counts[i] = b.Counts[i]
		if i < len(a.Counts) {
			counts[i] -= a.Counts[i]
		}
	}
	total := counts[len(counts)-1]
	if total <= 0 {
		return 0
	}
	want := int64(math.Ceil(0.99 * float64(total)))
	for i, c := range counts {
		if c >= want {
			if i < len(b.BoundsMs) {
				return b.BoundsMs[i]
			}
			break
		}
	}
	if n := len(b.BoundsMs); n > 0 {
		return b.BoundsMs[n-1]
	}
	return 0
}

package engine

import (
	"strconv"
	"strings"
	"time"
)

// fmtDuration prints durations the way people write them: 30s, 1m, 1m30s, 500ms.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	s := d.Round(time.Millisecond).String() // "1m30s", "1h30m0s", "1.5s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// fmtPercent prints a fraction as a percentage with at most two decimals.
func fmtPercent(f float64) string {
	return strconv.FormatFloat(roundTo(f*100, 2), 'f', -1, 64) + "%"
}

// fmtBP prints basis points (1/100 of a percent) as a percentage.
func fmtBP(bp int) string {
	return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%"
}

func roundTo(f float64, decimals int) float64 {
	p := 1.0
	for range decimals {
		p *= 10
	}
	if f < 0 {
		return -float64(int64(-f*p+0.5)) / p
	}
	return float64(int64(f*p+0.5)) / p
}

// fmtCount prints 1234 as 1,234.
func fmtCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtMs prints a latency in milliseconds: 120ms, 1.5s.
func fmtMs(ms float64) string {
	return fmtDuration(time.Duration(ms * float64(time.Millisecond)))
}

func joinComma(parts []string) string { return strings.Join(parts, ", ") }

package engine

import (
	"fmt"
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

// Ago prints how long before now t was: 5s ago, 3m ago, 2h ago, 4d ago; —
// for a time never set.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// HumanBytes prints a size in bytes as 950 B, 12.3 MB (powers of 1000, as
// registries and docker report image sizes).
func HumanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// ShortDigest is a digest or image ID as docker prints it: its first 12
// hex digits, sha256:0123456789abcdef… → 0123456789ab.
func ShortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

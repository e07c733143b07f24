package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/cutover/cutover/engine"
)

// stateText is a release state as a glyph and words, styled; the header
// and the home screen say it the same way so tests and people can rely on it.
func stateText(st Styles, s engine.ReleaseState, pausedBy string) string {
	switch s {
	case engine.ReleaseRunning:
		return st.Running.Render("● running")
	case engine.ReleasePaused:
		if pausedBy == "failure" {
			return st.Failing.Render("○ paused (by a failure)")
		}
		return st.Paused.Render("○ paused")
	case engine.ReleaseWaiting:
		return st.Degraded.Render("⚠ waiting for approval")
	case engine.ReleaseRollingBack:
		return st.Danger.Render("↓ rolling back")
	case engine.ReleaseSucceeded:
		return st.Healthy.Render("✓ succeeded")
	case engine.ReleaseRolledBack:
		return st.Degraded.Render("▼ rolled back")
	case engine.ReleaseFailed:
		return st.Failing.Render("× failed")
	case engine.ReleaseAborted:
		return st.Paused.Render("○ aborted")
	case engine.ReleaseTakenOver:
		return st.Degraded.Render("⚠ taken over")
	case "":
		return st.Subtle.Render("○ starting")
	}
	return string(s)
}

// healthText is an instance's health as glyph and word.
func healthText(st Styles, h engine.HealthStatus, healthy bool) string {
	switch {
	case h == engine.HealthHealthy:
		return st.Healthy.Render("✓ healthy")
	case (h == "" || h == engine.HealthUnknown) && healthy:
		// Not probed by this release, but serving: it passed its checks to get traffic.
		return st.Healthy.Render("✓ serving")
	case h == engine.HealthStarting:
		return st.Degraded.Render("↑ starting")
	case h == engine.HealthUnhealthy:
		return st.Failing.Render("× unhealthy")
	case h == engine.HealthCrashed:
		return st.Failing.Render("× crashed")
	}
	return st.Subtle.Render("○ unknown")
}

// instanceStateText is the platform state of an instance.
func instanceStateText(st Styles, s engine.InstanceState) string {
	switch s {
	case engine.StateRunning:
		return st.Running.Render("● running")
	case engine.StateCreated:
		return st.Subtle.Render("○ created")
	case engine.StateRestarting:
		return st.Degraded.Render("⚠ restarting")
	case engine.StateExited, engine.StateGone:
		return st.Failing.Render("○ " + string(s))
	}
	return string(s)
}

// pct prints a 0..1 share as a percentage: 25%, 33.3%.
func pct(f float64) string {
	v := f * 100
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10) + "%"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "%"
}

// errPct prints an error rate (a fraction) with two decimals.
func errPct(f float64) string { return strconv.FormatFloat(f*100, 'f', 2, 64) + "%" }

// ms prints a latency: 12ms, 1.2s.
func ms(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "s"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
}

// clock prints an elapsed time as 1:05 or 1:02:05.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// uptime prints a short duration: 45s, 12m, 3h, 2d.
func uptime(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return strings.TrimSuffix(engine.Ago(now, t), " ago")
}

// fit cuts s (which may hold ANSI styles) to w cells and pads it to exactly w.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if lipgloss.Width(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", max(0, w-lipgloss.Width(s)))
}

// fitTail is fit for names whose end tells them apart (container names end
// in a random suffix): a long one keeps its tail, "…0.0-7ee38f".
func fitTail(s string, w int) string {
	if w <= 1 || lipgloss.Width(s) <= w {
		return fit(s, w)
	}
	r := []rune(s)
	return fit("…"+string(r[max(0, len(r)-(w-1)):]), w)
}

// cut shortens s to at most w cells without padding.
func cut(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if lipgloss.Width(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return s
}

// lipglossWidth is the cell width of a styled string.
func lipglossWidth(s string) int { return lipgloss.Width(s) }

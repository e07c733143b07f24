package tui

import (
	"image/color"

	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// Styles are every style the console draws with, by meaning rather than by
// colour. They are built once from whether the background is dark (and
// whether colour is wanted); screens never make styles of their own.
type Styles struct {
	Title    lipgloss.Style // the top bar
	Heading  lipgloss.Style // section headings inside a screen
	Subtle   lipgloss.Style // secondary text: times, digests, hints
	Selected lipgloss.Style // the row the cursor is on

	Healthy  lipgloss.Style // ✓ healthy, succeeded
	Degraded lipgloss.Style // ⚠ starting, waiting, inconclusive
	Failing  lipgloss.Style // × unhealthy, failed
	Paused   lipgloss.Style // ‖ paused by operator or failure
	Running  lipgloss.Style // ● in progress

	Stable lipgloss.Style // the version traffic returns to
	Canary lipgloss.Style // the version being released
	Old    lipgloss.Style // any other version still present

	Danger lipgloss.Style // destructive prompts and their target
	Error  lipgloss.Style // the message line when something went wrong
	Info   lipgloss.Style // the message line otherwise
	Dialog lipgloss.Style // the box around a confirmation
	Key    lipgloss.Style // a key named inside text ("press a")

	Help help.Styles
}

// NewStyles builds the console's styles. dark says the terminal background
// is dark; color false (NO_COLOR) drops every colour but keeps bold and
// reverse, so the glyphs and words still carry the meaning.
func NewStyles(dark, colour bool) Styles {
	ld := lipgloss.LightDark(dark)
	c := func(light, darkHex string) color.Color {
		if !colour {
			return nil
		}
		return ld(lipgloss.Color(light), lipgloss.Color(darkHex))
	}
	fg := func(col color.Color) lipgloss.Style {
		s := lipgloss.NewStyle()
		if col != nil {
			s = s.Foreground(col)
		}
		return s
	}
	s := Styles{
		Title:    fg(c("#1d4ed8", "#93c5fd")).Bold(true),
		Heading:  fg(c("#334155", "#cbd5e1")).Bold(true),
		Subtle:   fg(c("#64748b", "#94a3b8")),
		Selected: lipgloss.NewStyle().Bold(true),
		Healthy:  fg(c("#15803d", "#4ade80")),
		Degraded: fg(c("#a16207", "#facc15")),
		Failing:  fg(c("#b91c1c", "#f87171")).Bold(true),
		Paused:   fg(c("#7c3aed", "#c4b5fd")),
		Running:  fg(c("#1d4ed8", "#60a5fa")),
		Stable:   fg(c("#0f766e", "#5eead4")),
		Canary:   fg(c("#c2410c", "#fdba74")),
		Old:      fg(c("#64748b", "#94a3b8")),
		Danger:   fg(c("#b91c1c", "#f87171")).Bold(true),
		Error:    fg(c("#b91c1c", "#f87171")).Bold(true),
		Info:     fg(c("#334155", "#e2e8f0")),
		Key:      fg(c("#1d4ed8", "#93c5fd")).Bold(true),
		Dialog:   lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1),
	}
	if colour {
		s.Selected = s.Selected.Background(ld(lipgloss.Color("#e0e7ff"), lipgloss.Color("#312e81")))
		s.Dialog = s.Dialog.BorderForeground(ld(lipgloss.Color("#b91c1c"), lipgloss.Color("#f87171")))
		s.Help = help.DefaultStyles(dark)
	} else {
		s.Selected = s.Selected.Reverse(true)
		plain := lipgloss.NewStyle()
		s.Help = help.Styles{Ellipsis: plain, ShortKey: plain.Bold(true), ShortDesc: plain, ShortSeparator: plain,
			FullKey: plain.Bold(true), FullDesc: plain, FullSeparator: plain}
	}
	return s
}

package tui

import (
	"sort"
	"strings"

	"github.com/cutover/cutover/engine"
)

// share is one version's part of the traffic and its role in the release.
type share struct {
	version string
	role    string // "stable", "canary" (the version being released) or "old"
	frac    float64
}

// shares orders a route table's versions stable first, then the new
// version, then any others, with their fraction of the traffic.
func shares(t engine.RouteTable, stable, target string, extra ...string) []share {
	seen := map[string]bool{}
	var order []string
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			order = append(order, v)
		}
	}
	add(stable)
	add(target)
	var rest []string
	for v := range t.Weights() {
		if !seen[v] {
			rest = append(rest, v)
		}
	}
	sort.Strings(rest)
	for _, v := range rest {
		add(v)
	}
	for _, v := range extra {
		add(v)
	}
	out := make([]share, 0, len(order))
	for _, v := range order {
		role := "old"
		switch v {
		case stable:
			role = "stable"
		case target:
			role = "canary"
		}
		out = append(out, share{v, role, t.Share(v)})
	}
	return out
}

// roleStyle is how a version's role is drawn, with the glyph its bar uses.
func roleStyle(st Styles, role string) (glyph string, render func(...string) string) {
	switch role {
	case "stable":
		return "▓", st.Stable.Render
	case "canary":
		return "▒", st.Canary.Render
	}
	return "░", st.Old.Render
}

// trafficBar draws the split as a bar of width cells, each version's
// part in its own glyph (▓ stable, ▒ new, ░ other) and colour.
func trafficBar(st Styles, ss []share, width int) string {
	if width <= 0 {
		return ""
	}
	var b strings.Builder
	used := 0
	for i, s := range ss {
		n := int(s.frac*float64(width) + 0.5)
		if i == len(ss)-1 && s.frac > 0 {
			n = width - used
		}
		n = min(n, width-used)
		if n <= 0 {
			continue
		}
		g, r := roleStyle(st, s.role)
		b.WriteString(r(strings.Repeat(g, n)))
		used += n
	}
	if used < width {
		b.WriteString(st.Subtle.Render(strings.Repeat("·", width-used)))
	}
	return b.String()
}

// trafficLegend is "▓ 1.0.0 75% · ▒ 1.1.0 25%".
func trafficLegend(st Styles, ss []share) string {
	var parts []string
	for _, s := range ss {
		g, r := roleStyle(st, s.role)
		parts = append(parts, r(g+" "+s.version+" "+pct(s.frac)))
	}
	if len(parts) == 0 {
		return st.Subtle.Render("no traffic routed")
	}
	return strings.Join(parts, " · ")
}

// splitText is the plain split for prompts: "1.0.0 75% · 1.1.0 25%".
func splitText(ss []share) string {
	var parts []string
	for _, s := range ss {
		if s.frac > 0 {
			parts = append(parts, s.version+" "+pct(s.frac))
		}
	}
	if len(parts) == 0 {
		return "no traffic routed"
	}
	return strings.Join(parts, " · ")
}

// rollbackEffect says what a rollback to stable does to the split:
// "canary 1.1.0 25% → 0%, stable 1.0.0 75% → 100%".
func rollbackEffect(ss []share, stable string) string {
	var parts []string
	var stableFrac float64
	for _, s := range ss {
		if s.version == stable {
			stableFrac = s.frac
			continue
		}
		role := "canary"
		if s.role == "old" {
			role = "old"
		}
		parts = append(parts, role+" "+s.version+" "+pct(s.frac)+" → 0%")
	}
	parts = append(parts, "stable "+stable+" "+pct(stableFrac)+" → 100%")
	return strings.Join(parts, ", ")
}

// promoteEffect says what promote does: "canary 1.1.0 25% → 100%, stable 1.0.0 75% → 0% and retired".
func promoteEffect(ss []share, target string) string {
	var tgt float64
	var parts []string
	for _, s := range ss {
		if s.version == target {
			tgt = s.frac
			continue
		}
		parts = append(parts, s.role+" "+s.version+" "+pct(s.frac)+" → 0% and retired")
	}
	return strings.Join(append([]string{"canary " + target + " " + pct(tgt) + " → 100%"}, parts...), ", ")
}

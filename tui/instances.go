package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/cutover/cutover/engine"
)

// instanceTable is a heading and one row per instance: name, version,
// platform state, health, uptime, restarts, in-flight requests, share of
// the traffic and, where there is room (see instanceColumns), the node it
// runs on. role names a version's role ("" for old).
func instanceTable(st Styles, now time.Time, ins []engine.InstanceView, table engine.RouteTable, stats engine.Stats, role func(string) string, w int) []string {
	weights := map[string]int{}
	for _, b := range table.Backends {
		weights[b.ID] = b.Weight
	}
	infl := map[string]int64{}
	for _, b := range stats.Backends {
		infl[b.ID] = b.InFlight
	}
	nameW, nodeW := instanceColumns(ins, w)
	head := fit("INSTANCE", nameW) + " " + fit("VERSION", 10) + " " + fit("STATE", 11) + " " + fit("HEALTH", 12) + " " +
		fit("UP", 5) + " " + fit("RESTARTS", 8) + " " + fit("IN-FLIGHT", 9) + " WEIGHT"
	if nodeW > 0 {
		head += " " + fit("NODE", nodeW)
	}
	out := []string{st.Heading.Render(cut(head, w))}
	if len(ins) == 0 {
		return append(out, st.Subtle.Render("○ no instances"))
	}
	for _, iv := range ins {
		in := iv.Instance
		r := role(in.Version)
		if r == "" {
			r = "old"
		}
		g, rs := roleStyle(st, r)
		restarts := fmt.Sprintf("%d", in.Restarts)
		if in.Restarts > 0 {
			restarts = st.Degraded.Render("⚠ " + restarts)
		}
		line := instanceName(in.Name, in.Version, nameW) + " " + rs(fit(g+" "+in.Version, 10)) + " " + fit(instanceStateText(st, in.State), 11) + " " +
			fit(healthText(st, iv.Health.Status, iv.Healthy || weights[in.ID] > 0), 12) + " " + fit(uptime(now, in.Started), 5) + " " +
			fit(restarts, 8) + " " + fit(fmt.Sprintf("%d", infl[in.ID]), 9) + " " + pct(weightShare(table, weights[in.ID]))
		if nodeW > 0 {
			node := in.Node
			if node == "" {
				node = "-"
			}
			line = fit(line, nameW+fixedColumns) + " " + fit(node, nodeW)
		}
		out = append(out, cut(line, w))
	}
	return out
}

// fixedColumns is the width of the columns other than the name and node.
const fixedColumns = 68

// instanceColumns sizes the name and node columns of an instance table w
// cells wide. The node shows where it fits beside a full name (32 cells)
// or, when instances run on several nodes, where the name can give way
// down to its narrowest (12); at 80 cells neither: version, state and
// health come first. nodeW is 0 when the node is not shown, or no
// instance knows its node.
func instanceColumns(ins []engine.InstanceView, w int) (nameW, nodeW int) {
	nameW = max(12, min(32, w-fixedColumns))
	nodes := map[string]bool{}
	longest := len("NODE")
	for _, iv := range ins {
		if n := iv.Instance.Node; n != "" {
			nodes[n] = true
			longest = max(longest, lipgloss.Width(n))
		}
	}
	if len(nodes) == 0 {
		return nameW, 0
	}
	want := min(longest, 20)
	least := min(want, 8)
	if room := w - fixedColumns - nameW - 1; room >= least {
		return nameW, min(want, room)
	}
	if narrow := w - fixedColumns - 1 - least; len(nodes) > 1 && narrow >= 12 {
		return narrow, least
	}
	return nameW, 0
}

// weightShare is a backend weight as a fraction of the table's total.
func weightShare(t engine.RouteTable, w int) float64 {
	total := 0
	for _, b := range t.Backends {
		total += b.Weight
	}
	if total == 0 {
		return 0
	}
	return float64(w) / float64(total)
}

// instanceName fits an instance's name into w cells keeping what tells it
// apart: its version and the random tail platforms end names with. The
// shared prefix goes first ("…1.2.0-7ee38f"), then the middle
// ("1.2.0…7ee38f"); a name without its version keeps its tail.
func instanceName(name, version string, w int) string {
	i := strings.LastIndex(name, version)
	if version == "" || i < 0 || lipgloss.Width(name) <= w {
		return fitTail(name, w)
	}
	if rest := name[i:]; lipgloss.Width(rest) < w {
		return fit("…"+rest, w)
	}
	tail := []rune(strings.TrimPrefix(name[i+len(version):], "-"))
	keep := min(len(tail), max(4, w-1-lipgloss.Width(version)))
	if w-1-keep < 1 {
		return fitTail(name, w)
	}
	return fit(cutPlain(version, w-1-keep)+"…"+string(tail[len(tail)-keep:]), w)
}

// cutPlain is the first w runes of s, without an ellipsis of its own.
func cutPlain(s string, w int) string {
	r := []rune(s)
	return string(r[:min(len(r), w)])
}

// clipInstances keeps n lines of an instance table (its heading and a row
// per instance of ins, in order); when some rows do not fit, the last line
// says how many more there are and of which versions, rather than dropping
// them silently.
func clipInstances(st Styles, table []string, ins []engine.InstanceView, n int) []string {
	if len(table) <= n || len(table) != len(ins)+1 {
		return table[:min(len(table), max(0, n))]
	}
	if n < 2 {
		return table[:max(0, n)]
	}
	hidden := ins[n-2:]
	var order []string
	count := map[string]int{}
	for _, iv := range hidden {
		v := iv.Instance.Version
		if count[v] == 0 {
			order = append(order, v)
		}
		count[v]++
	}
	var parts []string
	for _, v := range order {
		parts = append(parts, fmt.Sprintf("%s ×%d", v, count[v]))
	}
	more := fmt.Sprintf("… +%d more: %s", len(hidden), strings.Join(parts, ", "))
	return append(table[:n-1:n-1], st.Subtle.Render(more))
}

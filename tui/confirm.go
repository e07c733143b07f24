package tui

import (
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/cutover/cutover/engine"
)

// confirmGuard is how long a new prompt ignores keys, so a key typed just
// before it opened (or a repeat) cannot answer it.
const confirmGuard = 300 * time.Millisecond

// confirmKind names what a prompt would do.
type confirmKind int

const (
	confirmRollback confirmKind = iota // Backend.Rollback of a service from home
	confirmLiveRollback
	confirmPromote
	confirmQuit
)

// confirmDialog asks y/n before something destructive. The target and its
// effect are captured when it opens: what the operator read is what runs.
// The default is No: n, esc and enter all cancel; only y confirms.
type confirmDialog struct {
	kind    confirmKind
	service string // the captured target
	title   string // "Roll back demo?"
	effect  string // the exact effect
	yes     string // what y does
	opened  time.Time
}

// confirmResult is what a key did to a prompt.
type confirmResult int

const (
	confirmPending confirmResult = iota
	confirmYes
	confirmNo
)

// update answers a key; keys inside the guard time are ignored.
func (d *confirmDialog) update(msg tea.KeyPressMsg, now time.Time) confirmResult {
	if now.Sub(d.opened) < confirmGuard {
		return confirmPending
	}
	switch msg.String() {
	case "y", "Y":
		return confirmYes
	case "n", "N", "esc", "enter", "q", "ctrl+c":
		return confirmNo
	}
	return confirmPending
}

// view draws the prompt box at most width wide.
func (d *confirmDialog) view(st Styles, width int) string {
	inner := max(20, min(width-4, 76))
	body := lipgloss.NewStyle().Width(inner)
	text := st.Danger.Render(d.title) + "\n" +
		body.Render(d.effect) + "\n\n" +
		st.Key.Render("y") + " " + d.yes + "   " + st.Key.Render("n") + "/esc/enter cancel (default: No)"
	return st.Dialog.Render(body.Render(text))
}

// rollbackPrompt asks before an emergency rollback of sv (Backend.Rollback),
// naming the version the rollback really returns to, as the backend
// computes it when it runs.
func rollbackPrompt(sv ServiceState, now time.Time) confirmDialog {
	stable := sv.RollbackTo
	if stable == "" && len(sv.Versions) > 0 {
		stable = sv.Versions[0].Version
	}
	target := ""
	if r := sv.Release; r != nil && r.Kind == engine.KindDeploy && r.To.Version != stable {
		target = r.To.Version
	}
	effect := sv.Name + ": " + rollbackEffect(shares(sv.Table, stable, target), stable)
	if target != "" {
		effect += ", then " + target + "'s instances are retired"
	}
	switch {
	case sv.Live:
		effect += "; the release running here rolls back"
	case sv.Owner != "":
		effect += "; takes over from the release run by " + sv.Owner
	}
	if sv.RollbackFirst != "" {
		effect += ". First: " + sv.RollbackFirst
	}
	return confirmDialog{kind: confirmRollback, service: sv.Name, opened: now,
		title: fmt.Sprintf("Roll back %s to %s?", sv.Name, stable), effect: effect + ".", yes: "roll back"}
}

package tui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// env is what every screen shares with the root: the backend and the
// context its commands run in, the styles, the keys as enabled now, the
// clock, and the release this console runs.
type env struct {
	ctx    context.Context
	b      Backend
	styles Styles
	keys   KeyMap
	now    func() time.Time
	here   releaseHere
	// role limits what the person may do ("" for everything); shared says
	// releases belong to a server (Options.Shared).
	role   engine.Role
	shared bool
	who    string // the person at the console, for the title
}

// may says whether the person at the console may give cmd to a release.
func (e *env) may(cmd engine.Command) bool { return e.role == "" || e.role.Permits(cmd) }

// mayRelease says whether they may start or resume a release.
func (e *env) mayRelease() bool { return e.role == "" || e.role.MayRelease() }

// releaseHere is the release this console runs as its live view last saw
// it: home's release line and the keys that start a release depend on it.
type releaseHere struct {
	service string // "" until the console has run one
	snap    engine.Snapshot
	running bool
}

// screenID names the screens the root routes between.
type screenID int

const (
	screenHome screenID = iota
	screenPicker
	screenStrategy
	screenPlan
	screenLive
	screenHistory
	screenCount
)

// parent is the screen esc goes back to from each screen.
var parent = [screenCount]screenID{screenHome: screenHome, screenPicker: screenHome, screenStrategy: screenPicker,
	screenPlan: screenStrategy, screenLive: screenHome, screenHistory: screenHome}

// pane is what the root asks of every screen. Each screen is a concrete
// type with Update(msg) (T, tea.Cmd), View and SetSize, and implements pane
// on its pointer; update stores what Update returns.
type pane interface {
	update(tea.Msg) tea.Cmd
	View() string
	SetSize(w, h int)
	// enable turns on the screen's keys that work now; the root has turned
	// on those that work everywhere.
	enable(k *KeyMap)
	// subject is the service the screen is about: the one r rolls back.
	subject() string
}

// What some screens add to pane; the root asks with a type assertion.
type (
	// intender turns a key into an intent (nil when the screen handles
	// the key itself).
	intender interface{ intent(tea.KeyPressMsg) intent }
	// editor has a text input that takes keys before the global ones
	// while editing says so.
	editor interface{ editing() bool }
	// backer steps back inside the screen on esc and says whether it did;
	// when it did not, the root leaves the screen.
	backer interface{ back() bool }
	// waiter names what the screen waits for, for the message line.
	waiter interface{ busy() string }
	// loader reads what a new screen shows first.
	loader interface{ load() tea.Cmd }
)

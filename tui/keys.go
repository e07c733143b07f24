package tui

import "charm.land/bubbles/v2/key"

// KeyMap is every key the console answers to. The root enables the keys
// that work everywhere and the screen in view the rest that apply in its
// state now (Model.syncKeys), so help lists exactly what works and a
// disabled binding never matches. A new key is a field here, its default
// in DefaultKeyMap and its place in bindings.
type KeyMap struct {
	Up   key.Binding
	Down key.Binding

	// home
	Deploy   key.Binding
	Resume   key.Binding
	Watch    key.Binding
	History  key.Binding
	Rollback key.Binding // also on the live view

	// picker
	Filter key.Binding
	Choose key.Binding

	// strategy
	PrevStrategy key.Binding
	NextStrategy key.Binding
	Rolling      key.Binding
	BlueGreen    key.Binding
	Canary       key.Binding
	Inc          key.Binding
	Dec          key.Binding
	AddStep      key.Binding
	DelStep      key.Binding
	GateKind     key.Binding
	ToPlan       key.Binding

	// plan
	Start key.Binding

	// live
	Approve key.Binding
	Pause   key.Binding
	Promote key.Binding

	// history
	Events      key.Binding
	AllServices key.Binding // toggles between the selected service and all

	// prompts
	Yes key.Binding
	No  key.Binding

	Back key.Binding
	Help key.Binding
	Quit key.Binding
}

// DefaultKeyMap is the console's keys with their help text.
func DefaultKeyMap() KeyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return KeyMap{
		Up:   b([]string{"k", "up"}, "↑/k", "up"),
		Down: b([]string{"j", "down"}, "↓/j", "down"),

		Deploy:   b([]string{"enter", "d"}, "enter", "release"),
		Resume:   b([]string{"u"}, "u", "resume"),
		Watch:    b([]string{"v"}, "v", "view release"),
		History:  b([]string{"h"}, "h", "history"),
		Rollback: b([]string{"r"}, "r", "roll back"),

		Filter: b([]string{"/"}, "/", "filter"),
		Choose: b([]string{"enter"}, "enter", "choose"),

		PrevStrategy: b([]string{"left"}, "←", "prev strategy"),
		NextStrategy: b([]string{"right"}, "→", "next strategy"),
		Rolling:      b([]string{"1"}, "1", "rolling"),
		BlueGreen:    b([]string{"2"}, "2", "blue/green"),
		Canary:       b([]string{"3"}, "3", "canary"),
		Inc:          b([]string{"+", "="}, "+", "more"),
		Dec:          b([]string{"-", "_"}, "-", "less"),
		AddStep:      b([]string{"n"}, "n", "add step"),
		DelStep:      b([]string{"x"}, "x", "delete step"),
		GateKind:     b([]string{"g"}, "g", "gate kind"),
		ToPlan:       b([]string{"enter"}, "enter", "plan"),

		Start: b([]string{"enter"}, "enter", "start release"),

		Approve: b([]string{"a"}, "a", "approve"),
		Pause:   b([]string{"p"}, "p", "pause"),
		Promote: b([]string{"P"}, "P", "promote 100%"),

		Events:      b([]string{"enter"}, "enter", "events"),
		AllServices: b([]string{"a"}, "a", "all services"),

		Yes: b([]string{"y"}, "y", "yes"),
		No:  b([]string{"n", "esc", "enter"}, "n/esc/enter", "no (default)"),

		Back: b([]string{"esc"}, "esc", "back"),
		Help: b([]string{"?"}, "?", "help"),
		Quit: b([]string{"q", "ctrl+c"}, "q", "quit"),
	}
}

// bindings is every binding once, in the order help lists them: the one
// list that Enabled, FullHelp and disableAll go through.
func (k *KeyMap) bindings() []*key.Binding {
	return []*key.Binding{
		&k.Deploy, &k.Resume, &k.Watch, &k.Rollback, &k.History,
		&k.Filter, &k.Choose,
		&k.PrevStrategy, &k.NextStrategy, &k.Rolling, &k.BlueGreen, &k.Canary, &k.Inc, &k.Dec, &k.AddStep, &k.DelStep, &k.GateKind, &k.ToPlan,
		&k.Start,
		&k.Approve, &k.Pause, &k.Promote,
		&k.Events, &k.AllServices,
		&k.Yes, &k.No,
		&k.Up, &k.Down,
		&k.Back, &k.Help, &k.Quit,
	}
}

// Enabled lists the bindings that work now.
func (k KeyMap) Enabled() []key.Binding {
	var out []key.Binding
	for _, b := range k.bindings() {
		if b.Enabled() {
			out = append(out, *b)
		}
	}
	return out
}

// ShortHelp is the bottom line: every key that works on this screen.
func (k KeyMap) ShortHelp() []key.Binding { return k.Enabled() }

// FullHelp groups the enabled keys: the screen's actions, movement, and
// the keys that work everywhere.
func (k KeyMap) FullHelp() [][]key.Binding {
	var actions, move, global []key.Binding
	for _, b := range k.bindings() {
		if !b.Enabled() {
			continue
		}
		switch b {
		case &k.Up, &k.Down:
			move = append(move, *b)
		case &k.Back, &k.Help, &k.Quit:
			global = append(global, *b)
		default:
			actions = append(actions, *b)
		}
	}
	var out [][]key.Binding
	for _, g := range [][]key.Binding{actions, move, global} {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// disableAll turns every binding off; the root then enables what applies.
func (k *KeyMap) disableAll() {
	for _, b := range k.bindings() {
		b.SetEnabled(false)
	}
}

// Package tui is cutover's release console: `cutover` with no subcommand.
//
// Run opens it over a Backend; New returns the root model for tests. The
// console calls the Backend and drives *engine.Release values only from
// tea.Cmds, so no key ever blocks the UI.
//
// Screenshots are made from real frames: build a Model with New, feed it
// messages (tea.WindowSizeMsg first, then keys as tea.KeyPressMsg), and
// write Frame(m) — the View content with its ANSI styles — to a file:
//
//	go run github.com/charmbracelet/freeze@v0.2.2 --language ansi --line-height 1.0 -o out.png < frame.ansi
package tui

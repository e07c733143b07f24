package tui

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/cutover/cutover/engine"
)

// Options tune the console.
type Options struct {
	// Service is selected on the home screen at start.
	Service string
	// NoColor draws without colour (Run also honours NO_COLOR); glyphs
	// and words still say every state.
	NoColor bool
	// Light starts with light-background colours until the terminal
	// reports its background (dark is assumed otherwise).
	Light bool
	// Input and Output replace the terminal (tests).
	Input  io.Reader
	Output io.Writer
	// Width and Height fix the size instead of asking the terminal (tests).
	Width, Height int
	// Now is the wall clock for relative times and the prompt guard; nil
	// is time.Now. Tests pass a fixed time so frames are stable.
	Now func() time.Time
	// Role limits what the person at the console may do: the keys it may
	// not use are hidden (the backend refuses them anyway). Empty is the
	// local console, whose Unix user may run every cutover command.
	Role engine.Role
	// Who names the person at the console, shown in the title ("alice").
	Who string
	// Shared says the releases belong to a server the console is one
	// session of (cutover serve): leaving never stops them, any number of
	// them can be followed, and others may drive them too.
	Shared bool
}

// frameRate is how many times a second the renderer looks for a new frame.
// Bubble Tea's default, 60, wakes the console 60 times a second for
// nothing while it sits idle; nothing on screen moves faster than the
// loading spinner (10 frames a second), and a key still shows within 50 ms.
const frameRate = 20

// Run opens the console on the terminal (or opts.Input/Output) and
// returns when the operator leaves. A release still running then is
// aborted where it stands, as the quit prompt says — unless the releases
// belong to a server (opts.Shared).
func Run(ctx context.Context, b Backend, opts Options) error {
	if os.Getenv("NO_COLOR") != "" {
		opts.NoColor = true
	}
	final, err := NewProgram(ctx, b, opts).Run()
	if fm, ok := final.(Model); ok && fm.live.running() && !opts.Shared {
		abortAndWait(fm.live.rel, 10*time.Second)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// NewProgram is the console as a program, for a server that runs one per
// connection (cutover serve) on the connection's terminal: extra options
// (its input, output, size and colour profile) come first, so opts'
// NoColor still wins. The program ends with ctx.
func NewProgram(ctx context.Context, b Backend, opts Options, extra ...tea.ProgramOption) *tea.Program {
	m := New(b, opts)
	m.env.ctx = ctx
	popts := append(append([]tea.ProgramOption{}, extra...), tea.WithContext(ctx), tea.WithFPS(frameRate))
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		popts = append(popts, tea.WithOutput(opts.Output))
	}
	if opts.Width > 0 && opts.Height > 0 {
		popts = append(popts, tea.WithWindowSize(opts.Width, opts.Height))
	}
	if opts.NoColor {
		popts = append(popts, tea.WithColorProfile(colorprofile.Ascii))
	}
	return tea.NewProgram(m, popts...)
}

// abortAndWait stops a release the console leaves behind and waits a
// little for it to record where it stopped.
func abortAndWait(rel *engine.Release, limit time.Duration) {
	ch, unsub := rel.Subscribe()
	defer unsub()
	if rel.Send(engine.CmdAbort) != nil {
		return
	}
	timeout := time.After(limit)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			return
		}
	}
}

// Frame is the console's current frame with its ANSI styles, for
// screenshots: write it to a file and render it with freeze.
func Frame(m Model) string { return m.View().Content }

package tui

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// Results of the root's own commands.
type (
	// startedMsg carries a prepared release (deploy, resume or rollback).
	startedMsg struct {
		service string
		what    string // "release", "resume", "rollback": for the error message
		rel     *engine.Release
		err     error
	}
	commandSentMsg struct {
		cmd engine.Command
		err error
	}
	busyTickMsg struct{}
)

// safe runs f as a command. A panic in it becomes failed(err), the same
// kind of result with the panic as its error, so a bug in an adapter never
// takes the terminal down and the screen waiting for the answer hears of it.
func safe(f func() tea.Msg, failed func(error) tea.Msg) tea.Cmd {
	return func() (msg tea.Msg) {
		defer func() {
			if p := recover(); p != nil {
				msg = failed(panicError(p))
			}
		}()
		return f()
	}
}

// panicError reports a recovered panic with the top of its stack.
func panicError(p any) error {
	return fmt.Errorf("internal error (please report): %v\n%s", p, firstLines(string(debug.Stack()), 6))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func startRelease(ctx context.Context, b Backend, service, image string, spec engine.ServiceSpec) tea.Cmd {
	spec = cloneSpec(spec)
	return safe(func() tea.Msg {
		rel, err := b.Start(ctx, service, image, spec)
		return startedMsg{service, "release", rel, err}
	}, func(err error) tea.Msg { return startedMsg{service: service, what: "release", err: err} })
}

// resumeRelease continues the service's interrupted release, as journaled.
func resumeRelease(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		rel, err := b.Resume(ctx, service)
		return startedMsg{service, "resume", rel, err}
	}, func(err error) tea.Msg { return startedMsg{service: service, what: "resume", err: err} })
}

func startRollback(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		rel, err := b.Rollback(ctx, service)
		return startedMsg{service, "rollback", rel, err}
	}, func(err error) tea.Msg { return startedMsg{service: service, what: "rollback", err: err} })
}

// backgroundDoneMsg says how an emergency rollback run beside the release
// in view ended.
type backgroundDoneMsg struct {
	service string
	outcome engine.Outcome
	err     error
}

// runBackground runs an emergency rollback that is not the live view's.
func runBackground(ctx context.Context, b Backend, service string, rel *engine.Release) tea.Cmd {
	return safe(func() tea.Msg {
		o, err := b.Run(ctx, rel)
		return backgroundDoneMsg{service, o, err}
	}, func(err error) tea.Msg { return backgroundDoneMsg{service: service, err: err} })
}

// attachRelease finds the release of service the backend runs, to view it.
func attachRelease(b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		rel := b.Live(service)
		if rel == nil {
			return startedMsg{service: service, what: "view", err: fmt.Errorf("no release of %s runs any more", service)}
		}
		return startedMsg{service, "view", rel, nil}
	}, func(err error) tea.Msg { return startedMsg{service: service, what: "view", err: err} })
}

// sendCommand gives rel the command c from the person at the console.
func sendCommand(e *env, rel *engine.Release, c engine.Command) tea.Cmd {
	return sendOrder(e, rel, engine.Order{Command: c})
}

// sendApproval approves the gate named gate (the one on screen when the
// key was pressed): if the release has moved on, the engine refuses it.
func sendApproval(e *env, rel *engine.Release, gate string) tea.Cmd {
	return sendOrder(e, rel, engine.Order{Command: engine.CmdApprove, Gate: gate})
}

// sendOrder gives rel o through the backend, which says who gave it.
func sendOrder(e *env, rel *engine.Release, o engine.Order) tea.Cmd {
	ctx, b := e.ctx, e.b
	return safe(func() tea.Msg { return commandSentMsg{o.Command, b.Do(ctx, rel, o)} },
		func(err error) tea.Msg { return commandSentMsg{o.Command, err} })
}

func busyTick() tea.Cmd {
	return tea.Tick(150*time.Millisecond, func(time.Time) tea.Msg { return busyTickMsg{} })
}

// advise turns an error into a message that says what to do about it.
func advise(doing string, err error) string {
	s := err.Error()
	low := strings.ToLower(s)
	hint := ""
	switch {
	case errors.Is(err, engine.ErrLeaseHeld):
		hint = "wait for it, or press r to roll back and take over"
	case errors.Is(err, engine.ErrNotApplicable):
		return s
	case strings.Contains(low, "docker") && (strings.Contains(low, "connect") || strings.Contains(low, "daemon")):
		hint = "is Docker running? start it or check DOCKER_HOST; the console retries by itself"
	case strings.Contains(low, "router"):
		hint = "is the router running? start it with `cutover router`; the console retries by itself"
	case strings.Contains(low, "no such image") || strings.Contains(low, "not found") || strings.Contains(low, "manifest"):
		hint = "check the image exists (pick another in the image list)"
	case strings.Contains(low, "context deadline") || strings.Contains(low, "timeout"):
		hint = "it took too long; try again"
	}
	out := doing + ": " + s
	if hint != "" {
		out += " — " + hint
	}
	return out
}

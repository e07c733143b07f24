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

// Results of the commands that call the Backend. Each carries what it was
// asked about, so a late answer for a screen the operator has left is
// recognised and dropped.
type (
	servicesMsg struct {
		services []ServiceState
		err      error
	}
	// imagePageMsg is one page of a service's images from one listing
	// (load); the last message of a listing has done set, and err if it
	// failed. feed delivers the listing's next message.
	imagePageMsg struct {
		service string
		load    int
		rows    []ImageRow
		done    bool
		err     error
		feed    <-chan imagePageMsg
	}
	specMsg struct {
		service string
		spec    engine.ServiceSpec
		err     error
	}
	planMsg struct {
		service string
		plan    engine.Plan
		err     error
	}
	// startedMsg carries a prepared release (deploy, resume or rollback).
	startedMsg struct {
		service string
		what    string // "release", "resume", "rollback": for the error message
		rel     *engine.Release
		err     error
	}
	releaseDoneMsg struct {
		id      string
		outcome engine.Outcome
		err     error
	}
	// releaseEventsMsg is a batch of a release's events: those that had
	// arrived when the console was ready to take them (at least one).
	releaseEventsMsg struct {
		id  string
		evs []engine.Event
	}
	// releaseEventsClosedMsg says the subscription ended (Run returned).
	releaseEventsClosedMsg struct{ id string }
	commandSentMsg         struct {
		cmd engine.Command
		err error
	}
	historyMsg struct {
		service string // "" for every service
		records []engine.ReleaseRecord
		err     error
	}
	eventsMsg struct {
		id     string
		events []engine.Event
		err    error
	}
	// errMsg is a failure with no better home, such as a recovered panic.
	errMsg struct{ err error }

	homeTickMsg struct{}
	liveTickMsg struct{ id string }
	busyTickMsg struct{}
)

// homeRefreshEvery is how often the home screen re-reads the services.
const homeRefreshEvery = 2 * time.Second

// liveTickEvery is how often the live view takes a snapshot: often enough
// to feel live, rare enough that a burst of events costs one frame.
const liveTickEvery = 500 * time.Millisecond

// safe runs f as a command and turns a panic into an error message, so a
// bug in an adapter never takes the terminal down with it.
func safe(f func() tea.Msg) tea.Cmd {
	return func() (msg tea.Msg) {
		defer func() {
			if p := recover(); p != nil {
				msg = errMsg{fmt.Errorf("internal error (please report): %v\n%s", p, firstLines(string(debug.Stack()), 6))}
			}
		}()
		return f()
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func loadServices(ctx context.Context, b Backend) tea.Cmd {
	return safe(func() tea.Msg {
		s, err := b.Services(ctx)
		return servicesMsg{s, err}
	})
}

// loadImagePages lists a service's images page by page: a goroutine
// relays each page the Backend delivers into a feed, the command returns
// the first message, and the root re-arms waitImagePage once per message
// until the last. Cancelling ctx ends the listing and closes the feed.
func loadImagePages(ctx context.Context, b Backend, service string, load int) tea.Cmd {
	return func() tea.Msg {
		feed := make(chan imagePageMsg, 4)
		send := func(m imagePageMsg) {
			m.service, m.load, m.feed = service, load, feed
			select {
			case feed <- m:
			case <-ctx.Done():
			}
		}
		go func() {
			defer close(feed)
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("internal error (please report): %v\n%s", p, firstLines(string(debug.Stack()), 6))
					}
				}()
				return b.ImagePages(ctx, service, func(rows []ImageRow) {
					send(imagePageMsg{rows: append([]ImageRow(nil), rows...)})
				})
			}()
			send(imagePageMsg{done: true, err: err})
		}()
		return waitImagePage(feed)()
	}
}

// waitImagePage waits for a listing's next message; nil once the feed is
// closed (the listing was cancelled).
func waitImagePage(feed <-chan imagePageMsg) tea.Cmd {
	return func() tea.Msg {
		m, ok := <-feed
		if !ok {
			return nil
		}
		return m
	}
}

func loadSpec(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		s, err := b.Spec(ctx, service)
		return specMsg{service, s, err}
	})
}

func makePlan(ctx context.Context, b Backend, service, image string, spec engine.ServiceSpec) tea.Cmd {
	spec = cloneSpec(spec)
	return safe(func() tea.Msg {
		p, err := b.Plan(ctx, service, image, spec)
		return planMsg{service, p, err}
	})
}

func startRelease(ctx context.Context, b Backend, service, image string, spec engine.ServiceSpec) tea.Cmd {
	spec = cloneSpec(spec)
	return safe(func() tea.Msg {
		rel, err := b.Start(ctx, service, image, spec)
		return startedMsg{service, "release", rel, err}
	})
}

// resumeRelease continues the service's interrupted release, as journaled.
func resumeRelease(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		rel, err := b.Resume(ctx, service)
		return startedMsg{service, "resume", rel, err}
	})
}

func startRollback(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		rel, err := b.Rollback(ctx, service)
		return startedMsg{service, "rollback", rel, err}
	})
}

// runRelease runs rel to its end; the console learns of it by releaseDoneMsg.
func runRelease(ctx context.Context, rel *engine.Release) tea.Cmd {
	return safe(func() tea.Msg {
		o, err := rel.Run(ctx)
		return releaseDoneMsg{rel.ID(), o, err}
	})
}

// backgroundDoneMsg says how an emergency rollback run beside the release
// in view ended.
type backgroundDoneMsg struct {
	service string
	outcome engine.Outcome
	err     error
}

// runBackground runs an emergency rollback that is not the live view's.
func runBackground(ctx context.Context, service string, rel *engine.Release) tea.Cmd {
	return safe(func() tea.Msg {
		o, err := rel.Run(ctx)
		return backgroundDoneMsg{service, o, err}
	})
}

// maxEventBatch bounds one batch of events, so a flood still renders.
const maxEventBatch = 64

// waitEvent waits for the next event of a subscription and takes along
// whatever else has already arrived, so a burst costs one snapshot and one
// frame; the root re-arms it once per batch (bubbletea's realtime pattern).
func waitEvent(id string, ch <-chan engine.Event) tea.Cmd {
	return func() tea.Msg {
		ev, ok := <-ch
		if !ok {
			return releaseEventsClosedMsg{id}
		}
		evs := []engine.Event{ev}
		for len(evs) < maxEventBatch {
			select {
			case ev, ok := <-ch:
				if !ok {
					return releaseEventsMsg{id, evs} // the next wait sees the close
				}
				evs = append(evs, ev)
				continue
			default:
			}
			break
		}
		return releaseEventsMsg{id, evs}
	}
}

func sendCommand(rel *engine.Release, c engine.Command) tea.Cmd {
	return safe(func() tea.Msg { return commandSentMsg{c, rel.Send(c)} })
}

func loadHistory(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		r, err := b.History(ctx, service, 200)
		return historyMsg{service, r, err}
	})
}

func loadEvents(ctx context.Context, b Backend, id string) tea.Cmd {
	return safe(func() tea.Msg {
		e, err := b.Events(ctx, id)
		return eventsMsg{id, e, err}
	})
}

func homeTick() tea.Cmd {
	return tea.Tick(homeRefreshEvery, func(time.Time) tea.Msg { return homeTickMsg{} })
}

func liveTick(id string) tea.Cmd {
	return tea.Tick(liveTickEvery, func(time.Time) tea.Msg { return liveTickMsg{id} })
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

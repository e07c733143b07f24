package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Puller fetches a release's image onto the platform's host. Adapters
// (ECR with the Docker host) implement it; Launch then finds the image there.
type Puller interface {
	// Pull fetches target.Image, which names the image by digest where the
	// registry knows one. progress, if not nil, receives status lines such
	// as "3f4d…: Downloading 12MB/40MB"; it is not called after Pull returns.
	Pull(ctx context.Context, target Target, progress func(string)) error
}

// PullProgressEvery is the least time between two progress events of one
// layer: a pull prints many lines a second, the console needs few.
const PullProgressEvery = time.Second

// pull fetches the target's image before anything changes, renewing the
// lease and taking commands meanwhile. It returns errAbort or errRollback
// when an operator asked for them, a *TakenOverError when the lease went
// elsewhere, or the pull's failure, already reported as an event.
func (r *Release) pull(ctx context.Context) error {
	img := r.target.Image
	start := r.deps.Clock.Now()
	if err := r.emit(ctx, Event{Kind: EventPulling, Message: "pulling " + img + " onto the host before anything changes"}); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan string, 64)
	done := make(chan error, 1)
	go func() {
		done <- r.deps.Puller.Pull(pctx, r.target, func(s string) {
			select {
			case lines <- s:
			case <-pctx.Done():
			}
		})
	}()
	// stop ends the pull and waits for it, so no progress call outlives pull.
	stop := func() {
		cancel()
		for {
			select {
			case <-lines:
			case <-done:
				return
			}
		}
	}

	prog := newPullProgress(PullProgressEvery)
	emitAll := func(msgs []string) {
		for _, m := range msgs {
			_ = r.emit(ctx, Event{Kind: EventPullProgress, Message: m})
		}
	}
	var flush Timer
	// The pull waits like any step: on a timer of the engine's tick, so a
	// test clock sees the engine waiting.
	wake := r.deps.Clock.NewTimer(r.tickEvery())
	defer func() {
		wake.Stop()
		if flush != nil {
			flush.Stop()
		}
	}()
	for {
		if flush == nil && prog.pending() {
			flush = r.deps.Clock.NewTimer(PullProgressEvery)
		}
		var flushC <-chan time.Time
		if flush != nil {
			flushC = flush.C()
		}
		select {
		case err := <-done:
			// Lines sent before Pull returned are all in the buffer.
			for drained := false; !drained; {
				select {
				case s := <-lines:
					emitAll(prog.add(r.deps.Clock.Now(), s))
				default:
					drained = true
				}
			}
			emitAll(prog.flush(time.Time{}))
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				err = fmt.Errorf("pull %s: %w", img, err)
				_ = r.emit(ctx, Event{Kind: EventFailure, Message: "pull failed: stopping before anything changed", Error: err.Error()})
				return err
			}
			took := r.deps.Clock.Now().Sub(start).Round(100 * time.Millisecond)
			return r.emit(ctx, Event{Kind: EventPulled, Message: fmt.Sprintf("pulled %s in %s", img, took)})
		case s := <-lines:
			emitAll(prog.add(r.deps.Clock.Now(), s))
		case <-flushC:
			flush = nil
			emitAll(prog.flush(r.deps.Clock.Now()))
		case cmd := <-r.cmds:
			r.handle(ctx, cmd)
			if err := r.control(); err != nil {
				stop()
				_ = r.emit(ctx, Event{Kind: EventCommand, Message: "pull of " + img + " cancelled: nothing was changed"})
				return err
			}
		case <-wake.C():
			wake = r.deps.Clock.NewTimer(r.tickEvery())
		case <-r.lostCh:
			stop()
			return errLeaseLost(r.spec.Name)
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

// pullProgress coalesces pull status lines: per layer, a line passes when
// the layer's last one passed at least every ago; otherwise it waits, and
// only the latest waiting line of a layer is kept.
type pullProgress struct {
	every   time.Duration
	last    map[string]time.Time
	waiting map[string]string
}

func newPullProgress(every time.Duration) *pullProgress {
	return &pullProgress{every: every, last: map[string]time.Time{}, waiting: map[string]string{}}
}

// add takes one line at now and returns what to report now.
func (p *pullProgress) add(now time.Time, line string) []string {
	layer := pullLayer(line)
	if t, ok := p.last[layer]; ok && now.Sub(t) < p.every {
		p.waiting[layer] = line
		return nil
	}
	p.last[layer] = now
	delete(p.waiting, layer)
	return []string{line}
}

// flush returns the waiting lines whose layer may report again at now, in
// layer order; a zero now returns every waiting line (the pull ended).
func (p *pullProgress) flush(now time.Time) []string {
	var out []string
	for _, layer := range slices.Sorted(maps.Keys(p.waiting)) {
		if !now.IsZero() && now.Sub(p.last[layer]) < p.every {
			continue
		}
		out = append(out, p.waiting[layer])
		p.last[layer] = now
		delete(p.waiting, layer)
	}
	return out
}

func (p *pullProgress) pending() bool { return len(p.waiting) > 0 }

// pullLayer is what a status line is about: the layer id before ": ", or
// the whole line for lines about the image ("Digest: …" counts as its own).
func pullLayer(line string) string {
	if id, _, ok := strings.Cut(line, ": "); ok {
		return id
	}
	return line
}

package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Runner runs releases in the background for a process that outlives
// whoever started them: at most one per service, found by the service's
// name, run to their end whoever watches. `cutover serve` keeps one for
// all its SSH sessions, so a session that ends changes nothing and the
// next one finds the same release; the local console keeps one too.
type Runner struct {
	mu    sync.Mutex
	runs  map[string]*Running // by service, while running
	ended map[string]*Running // by service, the last that ended
	wg    sync.WaitGroup
}

// Running is a release a Runner runs.
type Running struct {
	Release *Release
	done    chan struct{}
	outcome Outcome
	err     error
}

// NewRunner returns a Runner with nothing running.
func NewRunner() *Runner {
	return &Runner{runs: map[string]*Running{}, ended: map[string]*Running{}}
}

// Start runs rel in the background. Starting a release that already runs
// (or just ended) here returns its Running again; another release of the
// same service running here is refused.
func (g *Runner) Start(rel *Release) (*Running, error) {
	svc := rel.Service()
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, ok := g.runs[svc]; ok {
		if cur.Release == rel {
			return cur, nil
		}
		return nil, fmt.Errorf("%s: release %s already runs here: %w", svc, cur.Release.ID(), ErrLeaseHeld)
	}
	if last, ok := g.ended[svc]; ok && last.Release == rel {
		return last, nil
	}
	run := &Running{Release: rel, done: make(chan struct{})}
	g.runs[svc] = run
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		// The release belongs to the runner, not to whoever started it:
		// nobody's context ends it. Stop aborts it.
		run.outcome, run.err = rel.Run(context.Background())
		g.mu.Lock()
		delete(g.runs, svc)
		g.ended[svc] = run
		g.mu.Unlock()
		close(run.done)
	}()
	return run, nil
}

// Live returns the release of service running here, if one does.
func (g *Runner) Live(service string) (*Running, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.runs[service]
	return r, ok
}

// List returns the releases running here, by service name.
func (g *Runner) List() []*Running {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*Running, 0, len(g.runs))
	for _, r := range g.runs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release.Service() < out[j].Release.Service() })
	return out
}

// Stop aborts every release running here, as ordered by by — each stops
// where it is and stays resumable — and waits for them to record it, or
// for ctx.
func (g *Runner) Stop(ctx context.Context, by Actor) error {
	for _, r := range g.List() {
		_ = r.Release.Do(Order{Command: CmdAbort, By: by})
	}
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("releases still stopping: %w", ctx.Err())
	}
}

// Done is closed when the release's Run has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Result is how the release ended (Release.Run's results); valid once Done
// is closed.
func (r *Running) Result() (Outcome, error) {
	<-r.done
	return r.outcome, r.err
}

// Wait returns how the release ended, or ctx's error if ctx ends first;
// the release goes on either way.
func (r *Running) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-r.done:
		return r.outcome, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

package enginetest

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/cutover/cutover/engine"
)

// Behavior is how instances of one version act when launched.
type Behavior struct {
	Starting  int   // probes that answer "starting" before the first healthy one
	Crash     bool  // the instance exits during start
	Unhealthy bool  // probes answer unhealthy forever
	LaunchErr error // Launch fails
}

// Platform is an in-memory engine.Platform. It records every call and, at
// Stop, checks rule 2 against its Router: weight 0 and nothing in flight
// (unless the drain timed out).
type Platform struct {
	Clock  engine.Clock
	Router *Router // optional: checked at Stop
	Trace  *Trace
	// BeforeLaunch and BeforeStop, if set, run at the start of each Launch
	// and Stop, outside the lock: a test's other writer can act while the
	// call is in flight, or the test can hold the call as a slow Docker would.
	BeforeLaunch func(spec engine.InstanceSpec)
	BeforeStop   func(id string)
	fails        map[string][]error // per operation: errors for its next calls, in order

	mu         sync.Mutex
	seq        int
	nodes      []string // PlaceOn's
	insts      map[string]*inst
	behave     map[string]Behavior
	violations []string
	calls      []string
}

type inst struct {
	in      engine.Instance
	probes  int
	b       Behavior
	health  *engine.Health // fixed answer set by SetHealth
	healthy bool           // last probe answered healthy
}

// NewPlatform returns an empty platform.
func NewPlatform(clock engine.Clock, router *Router, trace *Trace) *Platform {
	return &Platform{Clock: clock, Router: router, Trace: trace, insts: map[string]*inst{}, behave: map[string]Behavior{}}
}

// Behave sets how instances of version launched from now on act.
func (p *Platform) Behave(version string, b Behavior) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.behave[version] = b
}

// Seed adds n running, healthy instances of version, as a previous
// release would have left them.
func (p *Platform) Seed(service, version, image string, n int) []engine.Instance {
	var out []engine.Instance
	for range n {
		in, _ := p.launch(engine.InstanceSpec{Service: service, Version: version, Image: image, ReleaseID: "seed"}, false)
		p.mu.Lock()
		p.insts[in.ID].healthy = true
		p.mu.Unlock()
		out = append(out, in)
	}
	return out
}

// Launch starts an instance of spec.
func (p *Platform) Launch(ctx context.Context, spec engine.InstanceSpec) (engine.Instance, error) {
	if p.BeforeLaunch != nil {
		p.BeforeLaunch(spec)
	}
	if err := p.failure("launch"); err != nil {
		p.Trace.Add("platform:launch " + spec.Version + " (failed)")
		return engine.Instance{}, err
	}
	return p.launch(spec, true)
}

// FailNext makes the next calls of op ("launch", "stop", "instances",
// "health") fail with errs, one each, in order; nil lets one call through.
func (p *Platform) FailNext(op string, errs ...error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fails == nil {
		p.fails = map[string][]error{}
	}
	p.fails[op] = append(p.fails[op], errs...)
}

func (p *Platform) failure(op string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.fails[op]
	if len(q) == 0 {
		return nil
	}
	p.fails[op] = q[1:]
	return q[0]
}

// SeedCreated adds an instance of version that was created but never
// started, as a launch killed between the two would leave it.
func (p *Platform) SeedCreated(service, version, image, releaseID string) engine.Instance {
	in, _ := p.launch(engine.InstanceSpec{Service: service, Version: version, Image: image, ReleaseID: releaseID}, false)
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.insts[in.ID]
	i.in.State = engine.StateCreated
	i.in.Started = time.Time{}
	return i.in
}

func (p *Platform) launch(spec engine.InstanceSpec, record bool) (engine.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.behave[spec.Version]
	if record {
		p.Trace.Add("platform:launch " + spec.Version)
		p.calls = append(p.calls, "launch "+spec.Version)
		if b.LaunchErr != nil {
			return engine.Instance{}, b.LaunchErr
		}
	}
	p.seq++
	name := fmt.Sprintf("%s-%s-%d", spec.Service, spec.Version, p.seq)
	in := engine.Instance{ID: fmt.Sprintf("c%03d", p.seq), Name: name, Service: spec.Service, Version: spec.Version,
		Image: spec.Image, Digest: spec.Labels[engine.LabelDigest], ReleaseID: spec.ReleaseID,
		Addr: fmt.Sprintf("10.0.0.%d:8080", p.seq), State: engine.StateRunning, Started: p.Clock.Now()}
	if len(p.nodes) > 0 {
		in.Node = p.nodes[(p.seq-1)%len(p.nodes)]
	}
	if b.Crash {
		in.State = engine.StateExited
		in.ExitCode = 2
	}
	p.insts[in.ID] = &inst{in: in, b: b}
	return in, nil
}

// Instances lists the service's instances.
func (p *Platform) Instances(ctx context.Context, service string) ([]engine.Instance, error) {
	if err := p.failure("instances"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Trace.Add("platform:instances")
	var out []engine.Instance
	for _, i := range p.insts {
		if i.in.Service == service {
			out = append(out, i.in)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

// Stop removes an instance, recording a violation of rule 2 if the router
// still gives it weight or it has requests in flight without a drain timeout.
func (p *Platform) Stop(ctx context.Context, id string, grace time.Duration) error {
	if p.BeforeStop != nil {
		p.BeforeStop(id)
	}
	if err := p.failure("stop"); err != nil {
		p.Trace.Add("platform:stop " + id + " (failed)")
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Trace.Add("platform:stop " + id)
	p.calls = append(p.calls, "stop "+id)
	i, ok := p.insts[id]
	if !ok {
		return fmt.Errorf("no such instance %s", id)
	}
	if p.Router != nil {
		if w := p.Router.Weight(id); w > 0 {
			p.violations = append(p.violations, fmt.Sprintf("stopped %s (%s) with weight %d", i.in.Name, i.in.Version, w))
		}
		if n := p.Router.InFlight(id); n > 0 && !p.Router.DrainAbandoned(id) {
			p.violations = append(p.violations, fmt.Sprintf("stopped %s (%s) with %d requests in flight, drain not timed out", i.in.Name, i.in.Version, n))
		}
	}
	delete(p.insts, id)
	return nil
}

// Health answers one probe from the instance's behaviour.
func (p *Platform) Health(ctx context.Context, id string, check engine.HealthCheck) (engine.Health, error) {
	if err := p.failure("health"); err != nil {
		return engine.Health{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Trace.Add("platform:health " + id)
	i, ok := p.insts[id]
	if !ok {
		return engine.Health{}, fmt.Errorf("no such instance %s", id)
	}
	i.probes++
	h := engine.Health{Status: engine.HealthHealthy}
	switch {
	case i.health != nil:
		h = *i.health
	case i.in.State == engine.StateExited || i.in.State == engine.StateRestarting:
		h = engine.Health{Status: engine.HealthCrashed, Detail: fmt.Sprintf("exited with code %d", i.in.ExitCode)}
	case i.b.Unhealthy:
		h = engine.Health{Status: engine.HealthUnhealthy, Detail: "GET /healthz: 503"}
	case i.probes <= i.b.Starting:
		h = engine.Health{Status: engine.HealthStarting, Detail: "connection refused"}
	}
	i.healthy = h.Status == engine.HealthHealthy
	return h, nil
}

// SetHealth fixes the answer of an instance's probes from now on; nil
// returns it to its behaviour.
func (p *Platform) SetHealth(id string, h *engine.Health) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.insts[id]; ok {
		i.health = h
	}
}

// Crash makes an instance exit.
func (p *Platform) Crash(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.insts[id]; ok {
		i.in.State = engine.StateExited
		i.in.ExitCode = 137
		i.in.Restarts++
	}
}

// PlaceOn spreads instances over nodes in turn, by launch order, as Swarm
// places tasks: those there now and those launched from now on.
func (p *Platform) PlaceOn(nodes ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes = nodes
	ids := make([]string, 0, len(p.insts))
	for id := range p.insts {
		ids = append(ids, id)
	}
	sort.Strings(ids) // c001, c002, …: launch order
	for i, id := range ids {
		p.insts[id].in.Node = ""
		if len(nodes) > 0 {
			p.insts[id].in.Node = nodes[i%len(nodes)]
		}
	}
}

// Replace removes an instance and starts another of its version in its
// place, with a new id and address, as Swarm does with a task that died or
// whose node was lost. The newcomer acts as its version's behaviour says.
func (p *Platform) Replace(id string) (engine.Instance, bool) {
	p.mu.Lock()
	old, ok := p.insts[id]
	if ok {
		delete(p.insts, id)
	}
	p.mu.Unlock()
	if !ok {
		return engine.Instance{}, false
	}
	in, _ := p.launch(engine.InstanceSpec{Service: old.in.Service, Version: old.in.Version, Image: old.in.Image,
		ReleaseID: old.in.ReleaseID}, false)
	return in, true
}

// Get returns an instance by id.
func (p *Platform) Get(id string) (engine.Instance, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.insts[id]
	if !ok {
		return engine.Instance{}, false
	}
	return i.in, true
}

// Running lists the running instances of version.
func (p *Platform) Running(version string) []engine.Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []engine.Instance
	for _, i := range p.insts {
		if i.in.Version == version && i.in.State == engine.StateRunning {
			out = append(out, i.in)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Violations lists rule-2 violations seen at Stop.
func (p *Platform) Violations() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.violations...)
}

// Calls lists Launch and Stop calls in order ("launch 1.1.0", "stop c003").
func (p *Platform) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// CheckServing reports backends with weight that are not running
// instances whose last probe (or seeding) was healthy: rule 1. Give it to
// Router.Check.
func (p *Platform) CheckServing(t engine.RouteTable) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range t.Backends {
		if b.Weight == 0 {
			continue
		}
		i, ok := p.insts[b.ID]
		switch {
		case !ok:
			return fmt.Errorf("backend %s has weight %d but no instance", b.ID, b.Weight)
		case i.in.State != engine.StateRunning:
			return fmt.Errorf("backend %s has weight %d but is %s", b.ID, b.Weight, i.in.State)
		case !i.healthy:
			return fmt.Errorf("backend %s has weight %d but has not passed health", b.ID, b.Weight)
		}
	}
	return nil
}

// Get200 answers a GET straight at an instance's address, as the instance
// there would: a running one answers 200 (503 if it behaves unhealthy),
// and an address where nothing runs refuses the connection.
func (p *Platform) Get200(ctx context.Context, rawURL string) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, i := range p.insts {
		if i.in.Addr != u.Host {
			continue
		}
		switch {
		case i.in.State != engine.StateRunning:
			return 0, fmt.Errorf("dial %s: connection refused", u.Host)
		case i.b.Unhealthy || i.health != nil && i.health.Status != engine.HealthHealthy:
			return 503, nil
		}
		return 200, nil
	}
	return 0, fmt.Errorf("dial %s: connection refused", u.Host)
}

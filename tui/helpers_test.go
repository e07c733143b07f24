package tui

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

var _ = flag.Bool("tui-note", false, "golden files are refreshed with -update")

const svc = "demo"

// fakeBackend is a Backend over the engine's in-memory doubles, so the
// console drives a real executor in tests.
type fakeBackend struct {
	env      *enginetest.Env
	spec     engine.ServiceSpec
	images   []ImageRow
	failWith error // Services fails with it when set
	extra    []ServiceState
	// ImagePages delivers images in pages of pageSize, oldest page first
	// (pages are not ordered with each other); with hold set, every page
	// after the first waits for a value from it.
	pageSize int
	hold     chan struct{}
	// puller, when set, pulls every release's image before its first step.
	puller engine.Puller

	mu      sync.Mutex
	started []*engine.Release
	runs    *engine.Runner
	// who gives the console's orders (Do); role, when set, refuses what
	// it does not permit, as the server's backend does.
	who  engine.Actor
	role engine.Role
}

func newFakeBackend(t testing.TB) *fakeBackend {
	t.Helper()
	env := enginetest.NewEnv()
	env.SeedServing(svc, "1.0.0", 3)
	pushed := env.Clock.Now()
	return &fakeBackend{
		env: env,
		spec: engine.ServiceSpec{Name: svc, Replicas: 3, Port: 8080,
			Health:       engine.HealthCheck{Path: "/healthz", Interval: time.Second, Successes: 1, Failures: 2},
			StartTimeout: 30 * time.Second, DrainTimeout: 10 * time.Second, StopGrace: time.Second,
			Strategy: engine.StrategySpec{Type: engine.Canary, Canary: engine.CanarySpec{Instances: 1, Steps: []engine.CanaryStep{
				{Weight: 25, Gate: engine.Gate{Kind: engine.GateApproval}},
				{Weight: 50, Gate: engine.Gate{Kind: engine.GatePause, Pause: time.Minute}},
			}}, BlueGreen: engine.BlueGreenSpec{RollbackWindow: 5 * time.Minute}}},
		pageSize: 2,
		runs:     engine.NewRunner(),
		who:      engine.Actor{User: "alice", Host: "ops"},
		images: []ImageRow{
			{Image: engine.Image{Repository: "demo", Tags: []string{"1.2.0-rc1"}, Digest: "sha256:9f2c4e1ab7d0c3e5f6a7b8c9d0e1f2a3", Pushed: pushed.Add(-20 * time.Minute), Size: 7_400_000}, Ref: "img:1.2.0-rc1"},
			{Image: engine.Image{Repository: "demo", Tags: []string{"1.1.0", "latest"}, Digest: "sha256:1b2c3d4e5f60718293a4b5c6d7e8f901", Pushed: pushed.Add(-3 * time.Hour), Size: 7_300_000}, Ref: "img:1.1.0"},
			{Image: engine.Image{Repository: "demo", Tags: []string{"1.0.0"}, Digest: "sha256:aa11bb22cc33dd44ee55ff6677889900", Pushed: pushed.Add(-50 * time.Hour), Size: 7_100_000}, Ref: "img:1.0.0", Running: true},
			{Image: engine.Image{Repository: "demo", Tags: []string{"0.9.0"}, Digest: "sha256:0099887766554433221100ffeeddccbb", Pushed: pushed.Add(-240 * time.Hour), Size: 6_900_000}, Ref: "img:0.9.0", RanAt: true},
		},
	}
}

func targetOf(image string) engine.Target {
	return engine.Target{Image: image, Version: strings.TrimPrefix(image, "img:")}
}

func (f *fakeBackend) Services(ctx context.Context) ([]ServiceState, error) {
	if f.failWith != nil {
		return nil, f.failWith
	}
	s, err := f.service(ctx, svc)
	return append([]ServiceState{s}, f.extra...), err
}

// service is one service as Services reports it.
func (f *fakeBackend) service(ctx context.Context, name string) (ServiceState, error) {
	insts, _ := f.env.Platform.Instances(ctx, name)
	table, stats, _ := f.env.Router.State(ctx)
	s := ServiceState{Name: name, Strategy: f.spec.Strategy.Type, Replicas: f.spec.Replicas, Table: table, Stats: stats,
		RouterAddr: "127.0.0.1:8080", At: f.env.Clock.Now()}
	byVersion := map[string]*VersionState{}
	var order []string
	for _, in := range insts {
		v := byVersion[in.Version]
		if v == nil {
			v = &VersionState{Version: in.Version, Share: table.Share(in.Version)}
			byVersion[in.Version] = v
			order = append(order, in.Version)
		}
		v.Instances++
		v.Healthy++
		s.Instances = append(s.Instances, engine.InstanceView{Instance: in, Healthy: true, Health: engine.Health{Status: engine.HealthHealthy}})
	}
	for _, v := range order {
		s.Versions = append(s.Versions, *byVersion[v])
	}
	_, s.Live = f.runs.Live(name)
	if recs, _ := f.env.Journal.Releases(ctx, name, 1); len(recs) > 0 {
		r := recs[0]
		s.Release = &r
		s.Interrupted = r.State == engine.ReleaseAborted || r.State == engine.ReleaseFailed
		if r.Kind == engine.KindDeploy {
			s.RollbackTo = r.Stable().Version
		}
	}
	return s, nil
}

func (f *fakeBackend) ImagePages(ctx context.Context, service string, page func([]ImageRow)) error {
	n := max(1, f.pageSize)
	var pages [][]ImageRow
	for i := 0; i < len(f.images); i += n {
		pages = append([][]ImageRow{f.images[i:min(i+n, len(f.images))]}, pages...)
	}
	for i, p := range pages {
		if i > 0 && f.hold != nil {
			select {
			case <-f.hold:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		page(p)
	}
	return nil
}

func (f *fakeBackend) Spec(ctx context.Context, service string) (engine.ServiceSpec, error) {
	return f.spec, nil
}

func (f *fakeBackend) Plan(ctx context.Context, service, image string, spec engine.ServiceSpec) (engine.Plan, error) {
	return engine.NewPlan(ctx, f.env.Deps(), spec, targetOf(image))
}

func (f *fakeBackend) Start(ctx context.Context, service, image string, spec engine.ServiceSpec) (*engine.Release, error) {
	deps := f.env.Deps()
	deps.Puller = f.puller
	rel, err := engine.New(deps, spec, targetOf(image), engine.Options{Actor: engine.Actor{User: "alice", Host: "ops"}})
	f.track(rel)
	return rel, err
}

func (f *fakeBackend) Resume(ctx context.Context, service string) (*engine.Release, error) {
	recs, err := f.env.Journal.Releases(ctx, service, 1)
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("%s: nothing to resume (%v)", service, err)
	}
	deps := f.env.Deps()
	deps.Puller = f.puller
	rel, err := engine.New(deps, f.spec, recs[0].To, engine.Options{ID: recs[0].ID, Actor: engine.Actor{User: "alice", Host: "ops"}})
	f.track(rel)
	return rel, err
}

func (f *fakeBackend) Rollback(ctx context.Context, service string) (*engine.Release, error) {
	rel, err := engine.NewRollback(f.env.Deps(), f.spec, engine.Target{Version: "1.0.0", Image: "img:1.0.0"}, "",
		engine.Options{Actor: engine.Actor{User: "alice", Host: "ops"}})
	f.track(rel)
	return rel, err
}

func (f *fakeBackend) track(rel *engine.Release) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rel != nil {
		f.started = append(f.started, rel)
	}
}

// Run runs rel in the fake's runner, or follows it there.
func (f *fakeBackend) Run(ctx context.Context, rel *engine.Release) (engine.Outcome, error) {
	run, err := f.runs.Start(rel)
	if err != nil {
		return "", err
	}
	return run.Wait(ctx)
}

func (f *fakeBackend) Live(service string) *engine.Release {
	if run, ok := f.runs.Live(service); ok {
		return run.Release
	}
	return nil
}

func (f *fakeBackend) Do(ctx context.Context, rel *engine.Release, o engine.Order) error {
	o.By = f.who
	if f.role != "" && !f.role.Permits(o.Command) {
		return &engine.RoleError{Who: f.who, Role: f.role, What: string(o.Command)}
	}
	return rel.Do(o)
}

func (f *fakeBackend) History(ctx context.Context, service string, limit int) ([]engine.ReleaseRecord, error) {
	return f.env.Journal.Releases(ctx, service, limit)
}

func (f *fakeBackend) Events(ctx context.Context, id string) ([]engine.Event, error) {
	return f.env.Journal.Events(ctx, id)
}

var errDockerDown = errors.New("list instances: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")

// testClock is the console's wall clock in tests: fixed until moved.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a model under test with its backend and clock.
type harness struct {
	t  *testing.T
	b  *fakeBackend
	c  *testClock
	m  Model
	rn *enginetest.Run
	// fed is how many of fedRun's events the console has been given.
	fed    int
	fedRun *enginetest.Run
}

func newHarness(t *testing.T, w, h int) *harness {
	t.Helper()
	return newHarnessWith(t, w, h, Options{})
}

// newHarnessWith is newHarness with the console's options (role, shared).
func newHarnessWith(t *testing.T, w, h int, opts Options) *harness {
	t.Helper()
	b := newFakeBackend(t)
	c := &testClock{t: b.env.Clock.Now()}
	opts.Now, opts.NoColor = c.Now, true
	m := New(b, opts)
	hs := &harness{t: t, b: b, c: c, m: m}
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	hs.loadServices()
	return hs
}

// send delivers msg and returns the command the model asked for.
func (h *harness) send(msg tea.Msg) tea.Cmd {
	h.t.Helper()
	m, cmd := h.m.Update(msg)
	h.m = m.(Model)
	return cmd
}

// openPicker presses enter on home and delivers the whole listing
// through the console's own relay, page by page.
func (h *harness) openPicker() {
	h.t.Helper()
	h.press("enter")
	h.deliverImages()
}

func (h *harness) deliverImages() {
	h.t.Helper()
	cmd := loadImagePages(context.Background(), h.b, h.m.picker.service, h.m.picker.listing)
	for cmd != nil {
		msg, ok := cmd().(imagePageMsg)
		if !ok {
			h.t.Fatal("the image feed closed before its last page")
		}
		h.send(msg)
		cmd = nil
		if !msg.done {
			cmd = waitImagePage(msg.feed)
		}
	}
}

func (h *harness) loadServices() {
	h.t.Helper()
	s, err := h.b.Services(context.Background())
	h.send(servicesMsg{s, err})
}

// press types one key. Named keys: "enter", "esc", "up", "down", "left", "right".
func (h *harness) press(k string) tea.Cmd {
	h.t.Helper()
	return h.send(keyPress(k))
}

func keyPress(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "left":
		return tea.KeyPressMsg{Code: tea.KeyLeft}
	case "right":
		return tea.KeyPressMsg{Code: tea.KeyRight}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	code := r
	if r >= 'A' && r <= 'Z' {
		return tea.KeyPressMsg{Code: r + ('a' - 'A'), ShiftedCode: r, Text: k, Mod: tea.ModShift}
	}
	return tea.KeyPressMsg{Code: code, Text: k}
}

// settle waits out the prompt guard.
func (h *harness) settle() { h.c.Advance(time.Second) }

// view is the frame without styles.
func (h *harness) view() string {
	v := releaseID.ReplaceAllString(ansi.Strip(Frame(h.m)), "$1-XXXX")
	// The fake clock advances by however many timers the engine happened
	// to wait on, so seconds and times of day are masked.
	v = clockTime.ReplaceAllString(v, "hh:mm:ss")
	v = elapsed.ReplaceAllString(v, "elapsed m:ss")
	return seconds.ReplaceAllString(v, "Ns")
}

var (
	clockTime = regexp.MustCompile(`\b\d\d:\d\d:\d\d\b`)
	elapsed   = regexp.MustCompile(`elapsed \d+:\d\d`)
	seconds   = regexp.MustCompile(`\b\d+s\b`)
)

// releaseID matches the random suffix of release ids, masked in goldens.
var releaseID = regexp.MustCompile(`(\w+-\d{8}T\d{6})-[0-9a-f]{4}`)

func (h *harness) golden() {
	h.t.Helper()
	golden.RequireEqual(h.t, h.view())
}

// startCanary starts a canary release of 1.1.0 in the background, with
// the fake clock moved along as the engine waits, and shows it live.
func (h *harness) startCanary(until func(engine.Event) bool) {
	h.t.Helper()
	rel, err := h.b.Start(context.Background(), svc, "img:1.1.0", h.b.spec)
	if err != nil {
		h.t.Fatal(err)
	}
	h.rn = h.b.env.Start(h.t, rel)
	if _, ok := h.rn.Until(until); !ok {
		h.t.Fatalf("release ended before the awaited event: %v", h.rn.Events())
	}
	h.rn.Idle()
	h.send(startedMsg{svc, "release", rel, nil})
	h.syncLive()
}

// syncLive feeds the events so far into the log and takes a snapshot.
func (h *harness) syncLive() {
	h.t.Helper()
	if h.fedRun != h.rn {
		h.fed, h.fedRun = 0, h.rn
	}
	evs := h.rn.Events()
	if h.fed < len(evs) {
		h.send(releaseEventsMsg{h.m.live.id, evs[h.fed:]})
	}
	h.fed = len(evs)
	h.c.t = h.b.env.Clock.Now()
	h.send(liveTickMsg{h.m.live.id})
}

// run executes cmd if it is a plain command (not a batch or a tick) and
// feeds its message back.
func (h *harness) run(cmd tea.Cmd) {
	h.t.Helper()
	if cmd == nil {
		return
	}
	h.send(cmd())
}

func gateIs(k engine.GateKind) func(engine.Event) bool {
	return func(ev engine.Event) bool {
		return ev.Kind == engine.EventGateWaiting && ev.Gate != nil && ev.Gate.Kind == k
	}
}

func kindIs(k engine.EventKind) func(engine.Event) bool {
	return func(ev engine.Event) bool { return ev.Kind == k }
}

// afterMoment bounds how long runQuick waits for a command that may be a
// tick; commands that call the fake backend answer at once.
func afterMoment() <-chan time.Time { return time.After(300 * time.Millisecond) }

package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

var sizes = []struct{ w, h int }{{80, 24}, {120, 40}}

// pushFigures feeds n seconds of router figures into the sparklines.
func (h *harness) pushFigures(n int) {
	for i := range n {
		for v, base := range map[string]float64{"1.0.0": 90, "1.1.0": 30} {
			se := h.m.live.series[v]
			if se == nil {
				se = &series{}
				h.m.live.series[v] = se
			}
			se.rps.push(base + float64(i%7)*3)
			se.errs.push(float64(i%5) / 1000)
			se.p99.push(20 + float64(i%4)*5)
		}
	}
}

// serveTraffic runs n home refreshes two seconds apart, with requests
// served between them, so the cards' figures and sparklines fill.
func (h *harness) serveTraffic(n int) {
	h.t.Helper()
	for i := range n {
		h.b.env.Router.Serve("1.0.0", int64(180+i%5*20), int64(i%3), float64(15+i%4*5))
		h.b.env.Router.Serve("1.1.0", int64(60+i%3*10), int64(i%2*2), float64(25+i%3*5))
		h.b.env.Clock.Advance(homeRefreshEvery)
		h.loadServices()
	}
}

// leaveCanary leaves a canary of 1.1.0 at 25%, aborted at its approval
// gate, as a console killed mid-release would.
func (h *harness) leaveCanary() {
	h.t.Helper()
	rel, _ := h.b.Start(context.Background(), svc, "img:1.1.0", h.b.spec)
	rn := h.b.env.Start(h.t, rel)
	rn.Until(gateIs(engine.GateApproval))
	rel.Send(engine.CmdAbort)
	rn.Wait()
	h.loadServices()
}

func TestEveryScreenRendersAtBothSizes(t *testing.T) {
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Run("home", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.serveTraffic(20)
				h.golden()
			})
			t.Run("home_interrupted_canary", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.leaveCanary()
				h.serveTraffic(20)
				h.golden()
			})
			t.Run("home_docker_down", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.b.failWith = errDockerDown
				h.loadServices()
				h.m.home.services = nil
				h.golden()
			})
			t.Run("picker", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.openPicker()
				h.press("j")
				h.golden()
			})
			t.Run("picker_filter", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.openPicker()
				h.press("/")
				for _, r := range "1.1" {
					h.press(string(r))
				}
				h.golden()
			})
			t.Run("strategy_canary", func(t *testing.T) {
				h := h4strategy(t, sz.w, sz.h)
				h.golden()
			})
			t.Run("strategy_rolling_edited", func(t *testing.T) {
				h := h4strategy(t, sz.w, sz.h)
				h.press("1")
				h.press("+")
				h.press("j")
				h.press("j")
				h.press("j")
				h.press("+")
				h.golden()
			})
			t.Run("strategy_bluegreen", func(t *testing.T) {
				h := h4strategy(t, sz.w, sz.h)
				h.press("2")
				h.golden()
			})
			t.Run("plan", func(t *testing.T) {
				h := h4plan(t, sz.w, sz.h)
				h.golden()
			})
			t.Run("live_waiting_for_approval", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.startCanary(gateIs(engine.GateApproval))
				h.pushFigures(45)
				h.golden()
			})
			t.Run("live_analysis", func(t *testing.T) {
				h := h4analysis(t, sz.w, sz.h)
				h.golden()
			})
			t.Run("live_on_two_nodes", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.b.env.Platform.PlaceOn("node-1", "node-2")
				h.startCanary(gateIs(engine.GateApproval))
				h.pushFigures(45)
				h.golden()
			})
			t.Run("history", func(t *testing.T) {
				h := h4history(t, sz.w, sz.h)
				h.golden()
			})
			t.Run("history_events", func(t *testing.T) {
				h := h4history(t, sz.w, sz.h)
				h.press("enter")
				rec, _ := h.m.history.selected()
				evs, _ := h.b.Events(context.Background(), rec.ID)
				h.send(eventsMsg{rec.ID, evs, nil})
				h.golden()
			})
			t.Run("history_events_on_two_nodes", func(t *testing.T) {
				h := h4history(t, sz.w, sz.h, "node-1", "node-2")
				h.press("enter")
				rec, _ := h.m.history.selected()
				evs, _ := h.b.Events(context.Background(), rec.ID)
				h.send(eventsMsg{rec.ID, evs, nil})
				h.golden()
			})
			t.Run("help", func(t *testing.T) {
				h := newHarness(t, sz.w, sz.h)
				h.press("?")
				h.golden()
			})
		})
	}
}

func h4strategy(t *testing.T, w, hh int) *harness {
	t.Helper()
	h := newHarness(t, w, hh)
	h.openPicker()
	h.press("j") // 1.1.0
	h.press("enter")
	spec, _ := h.b.Spec(context.Background(), svc)
	h.send(specMsg{svc, spec, nil})
	return h
}

func h4plan(t *testing.T, w, hh int) *harness {
	t.Helper()
	h := h4strategy(t, w, hh)
	h.press("enter")
	p, err := h.b.Plan(context.Background(), svc, "img:1.1.0", h.m.plan.spec)
	h.send(planMsg{svc, h.m.plan.request, p, err})
	return h
}

// h4analysis shows a canary 5s into its analysis window: the router
// says it fails 10% of its requests against a 1% limit, one query is
// within its limit and the other not measured yet.
func h4analysis(t *testing.T, w, hh int) *harness {
	t.Helper()
	h := newHarness(t, w, hh)
	h.b.spec.Strategy.Canary.Steps = []engine.CanaryStep{{Weight: 25, Gate: engine.Gate{Kind: engine.GateAnalysis,
		Analysis: engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond, MinRequests: 50,
			Queries: []engine.QuerySpec{
				{Name: "error-rate", Query: `rate(errors{version="{{.Canary}}"}[{{.Window}}])`, Max: ptr(0.05), Interval: 2 * time.Second},
				{Name: "saturation", Query: `max(saturation{version="{{.Canary}}"})`, Max: ptr(0.8), Interval: 30 * time.Second},
			}}}}}
	h.b.env.Router.ServeOnState("1.1.0", 20, 2, 30)
	h.b.env.Router.ServeOnState("1.0.0", 60, 0, 25)
	h.b.env.Metrics.Answer("errors", 0.012)
	h.startCanary(kindIs(engine.EventAnalysisProgress))
	h.pushFigures(30)
	return h
}

func ptr(f float64) *float64 { return &f }

// h4history runs one canary to success so the journal has a record, on
// nodes when some are named.
func h4history(t *testing.T, w, hh int, nodes ...string) *harness {
	t.Helper()
	h := newHarness(t, w, hh)
	if len(nodes) > 0 {
		h.b.env.Platform.PlaceOn(nodes...)
	}
	h.startCanary(gateIs(engine.GateApproval))
	if err := h.m.live.rel.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	if o, err := h.rn.Wait(); o != engine.Succeeded {
		t.Fatalf("outcome %s, %v", o, err)
	}
	h.c.t = h.b.env.Clock.Now().Add(time.Hour)
	h.press("esc")
	h.press("h")
	recs, err := h.b.History(context.Background(), svc, 10)
	h.send(historyMsg{svc, recs, err})
	return h
}

func TestPickerListsNewestFirstWithMarkers(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.openPicker()
	v := h.view()
	i120, i110 := strings.Index(v, "1.2.0-rc1"), strings.Index(v, "1.1.0, latest")
	if i120 < 0 || i110 < 0 || i120 > i110 {
		t.Fatalf("want 1.2.0-rc1 above 1.1.0:\n%s", v)
	}
	for _, want := range []string{"● running", "↺ ran before", "20m ago", "7.4 MB", "9f2c4e1ab7d0"} {
		if !strings.Contains(v, want) {
			t.Errorf("picker lacks %q:\n%s", want, v)
		}
	}
	h.press("/")
	h.press("0")
	h.press(".")
	h.press("9")
	if v := h.view(); strings.Contains(v, "1.1.0, latest") || !strings.Contains(v, "0.9.0") {
		t.Fatalf("filter 0.9 should keep only 0.9.0:\n%s", v)
	}
}

func TestStrategyEditsReachThePlan(t *testing.T) {
	h := h4strategy(t, 80, 24)
	h.press("j") // step 1 weight
	h.press("+") // 25 → 30
	h.press("n") // add a step after step 1
	h.press("x") // and remove it again
	h.press("k") // back to step 1 gate
	h.press("g") // approval → pause 1m
	h.press("enter")
	steps := h.m.plan.spec.Strategy.Canary.Steps
	if steps[0].Weight != 30 || steps[0].Gate.Kind != engine.GatePause || len(steps) != 2 {
		t.Fatalf("edited steps = %+v", steps)
	}
	if h.b.spec.Strategy.Canary.Steps[0].Weight != 25 {
		t.Fatal("editing the strategy changed the backend's spec")
	}
	p, err := h.b.Plan(context.Background(), svc, "img:1.1.0", h.m.plan.spec)
	h.send(planMsg{svc, h.m.plan.request, p, err})
	if v := h.view(); !strings.Contains(v, "1.1.0 30%") || !strings.Contains(v, "pause 1m") {
		t.Fatalf("plan does not show the edits:\n%s", v)
	}
}

// A task Swarm replaced mid-release: the live log and the release's
// history say so, and where the newcomer runs.
func TestReplacedTaskShowsWithItsNodeInTheLogAndHistory(t *testing.T) {
	h := newHarness(t, 120, 40)
	h.b.env.Platform.PlaceOn("node-1", "node-2")
	h.startCanary(gateIs(engine.GateApproval))
	newcomer, _ := h.b.env.Platform.Replace(h.b.env.Platform.Running("1.0.0")[0].ID)
	if _, ok := h.rn.Until(kindIs(engine.EventApplied)); !ok {
		t.Fatalf("the table did not follow the replacement: %v", h.rn.Events())
	}
	h.rn.Idle()
	h.syncLive()
	want := fmt.Sprintf("replaced: %s (1.0.0) appeared on %s", newcomer.Name, newcomer.Node)
	if v := h.view(); !strings.Contains(v, want) || !strings.Contains(v, "NODE") {
		t.Errorf("live view lacks %q or its NODE column:\n%s", want, v)
	}
	if err := h.m.live.rel.Send(engine.CmdApprove); err != nil {
		t.Fatal(err)
	}
	if o, err := h.rn.Wait(); o != engine.Succeeded {
		t.Fatalf("outcome %s, %v", o, err)
	}
	h.press("esc")
	h.press("h")
	recs, err := h.b.History(context.Background(), svc, 10)
	h.send(historyMsg{svc, recs, err})
	h.press("enter")
	evs, _ := h.b.Events(context.Background(), recs[0].ID)
	h.send(eventsMsg{recs[0].ID, evs, nil})
	want = fmt.Sprintf("replaced      %s (1.0.0) appeared on %s", newcomer.Name, newcomer.Node)
	for range evs {
		if strings.Contains(h.view(), want) {
			return
		}
		h.press("down")
	}
	t.Errorf("the release's history never shows %q:\n%s", want, h.view())
}

package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestHomeCardFiguresComeFromTheRefreshes(t *testing.T) {
	h := newHarness(t, 120, 40)
	for range 4 {
		h.b.env.Router.Serve("1.0.0", 200, 2, 30) // 100 rps over the 2s between refreshes
		h.b.env.Clock.Advance(homeRefreshEvery)
		h.loadServices()
	}
	v := h.view()
	mustContain(t, v, "100.0 rps", "1.00% err", "p99 50ms")
	// The first reading of a version's totals is the baseline, not a point.
	if n := h.m.home.figures[svc]["1.0.0"].rps.n; n != 3 {
		t.Fatalf("%d points in the ring after 4 refreshes, want 3", n)
	}
	// A reading the console already has (same time) adds no point.
	h.loadServices()
	if n := h.m.home.figures[svc]["1.0.0"].rps.n; n != 3 {
		t.Fatalf("a repeated reading added a point: %d", n)
	}
}

func TestHomeDrawsOneHealthGlyphPerInstance(t *testing.T) {
	h := newHarness(t, 120, 40)
	iv := func(name string, healthy bool, status engine.HealthStatus) engine.InstanceView {
		return engine.InstanceView{Instance: engine.Instance{ID: name, Name: name, Version: "2.0.0", State: engine.StateRunning},
			Healthy: healthy, Health: engine.Health{Status: status}}
	}
	h.b.extra = []ServiceState{{Name: "api", Strategy: engine.Rolling, Replicas: 3,
		Versions:  []VersionState{{Version: "2.0.0", Share: 1, Instances: 3, Healthy: 1}},
		Instances: []engine.InstanceView{iv("api-1", true, engine.HealthHealthy), iv("api-2", false, engine.HealthStarting), iv("api-3", false, engine.HealthUnhealthy)}}}
	h.loadServices()
	h.press("j")
	mustContain(t, h.view(), "✓●× 1/3 healthy", "── api · instances", "× unhealthy", "↑ starting")
}

func TestHomeShowsTheDetailPaneOnlyWhenItFits(t *testing.T) {
	h := newHarness(t, 80, 24)
	mustContain(t, h.view(), "── demo · instances", "router 127.0.0.1:8080 · epoch")
	for i := range 5 {
		h.b.extra = append(h.b.extra, ServiceState{Name: fmt.Sprintf("svc%d", i), Replicas: 1,
			Versions: []VersionState{{Version: "1.0.0", Share: 1, Instances: 1, Healthy: 1}}})
	}
	h.loadServices()
	v := h.view()
	if strings.Contains(v, "· instances") {
		t.Fatalf("detail pane drawn over a list that does not fit:\n%s", v)
	}
	for range 5 {
		h.press("j")
	}
	mustContain(t, h.view(), "▸ svc4")
}

func TestHomeRefreshesOnItsTickButNotUnderAPrompt(t *testing.T) {
	h := newHarness(t, 80, 24)
	if cmd := h.send(homeTickMsg{}); cmd == nil || !h.m.home.refreshing {
		t.Fatal("a home tick did not start a refresh")
	}
	if h.send(homeTickMsg{}); !h.m.home.refreshing {
		t.Fatal("refreshing flag lost")
	}
	h.loadServices()
	if h.m.home.refreshing {
		t.Fatal("refreshing after the services arrived")
	}
	h.press("r") // the rollback prompt
	if cmd := h.send(homeTickMsg{}); cmd == nil || h.m.home.refreshing {
		t.Fatal("refreshed under an open prompt, or stopped ticking")
	}
	h.press("esc")
	h.press("h") // history: home is not on screen
	if h.send(homeTickMsg{}); h.m.home.refreshing {
		t.Fatal("refreshed home while it was not on screen")
	}
}

func TestHistoryOpensOnTheSelectedServiceAndATogglesAll(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.leaveCanary()
	h.press("h")
	if h.m.history.service != svc {
		t.Fatalf("history opened on %q, want %q", h.m.history.service, svc)
	}
	recs, err := h.b.History(context.Background(), svc, 10)
	h.send(historyMsg{svc, recs, err})
	mustContain(t, h.view(), "history · demo", "a all services")
	h.press("a")
	if h.m.history.service != "" || h.m.history.loaded {
		t.Fatal("a did not switch to every service")
	}
	// The late answer for demo is dropped; the one for all is taken.
	h.send(historyMsg{svc, recs, err})
	if h.m.history.loaded {
		t.Fatal("an answer for the old scope was shown")
	}
	h.send(historyMsg{"", recs, err})
	mustContain(t, h.view(), "history · all services", "a only demo")
	h.press("a")
	if h.m.history.service != svc {
		t.Fatal("a did not switch back to the selected service")
	}
}

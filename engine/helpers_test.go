package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

const svc = "web"

var target = engine.Target{Image: "img:1.1.0", Version: "1.1.0", Digest: "sha256:abc"}

func baseSpec(strategy engine.StrategySpec) engine.ServiceSpec {
	return engine.ServiceSpec{
		Name: svc, Replicas: 4, Port: 8080,
		Health:       engine.HealthCheck{Path: "/healthz", Interval: time.Second, Successes: 1, Failures: 2},
		StartTimeout: 30 * time.Second, DrainTimeout: 10 * time.Second, StopGrace: time.Second,
		Strategy: strategy,
	}
}

func canarySpec(steps ...engine.CanaryStep) engine.ServiceSpec {
	return baseSpec(engine.StrategySpec{Type: engine.Canary, Canary: engine.CanarySpec{Instances: 1, Steps: steps}})
}

func approval() engine.Gate { return engine.Gate{Kind: engine.GateApproval} }
func pause(d time.Duration) engine.Gate {
	return engine.Gate{Kind: engine.GatePause, Pause: d}
}
func analysis(a engine.AnalysisSpec) engine.Gate {
	return engine.Gate{Kind: engine.GateAnalysis, Analysis: a}
}

// start seeds 4 serving instances of 1.0.0 and starts a release of spec.
func start(t *testing.T, spec engine.ServiceSpec, opts engine.Options) (*enginetest.Env, *enginetest.Run) {
	t.Helper()
	env := enginetest.NewEnv()
	env.SeedServing(svc, "1.0.0", 4)
	rel, err := engine.New(env.Deps(), spec, target, opts)
	if err != nil {
		t.Fatal(err)
	}
	return env, env.Start(t, rel)
}

// assertSafe checks rules 1 and 2 over everything the doubles saw.
func assertSafe(t *testing.T, env *enginetest.Env) {
	t.Helper()
	if v := env.Router.Violations(); len(v) > 0 {
		t.Errorf("rule 1 violated: traffic to instances that did not pass health: %v", v)
	}
	if v := env.Platform.Violations(); len(v) > 0 {
		t.Errorf("rule 2 violated: instances stopped with traffic: %v", v)
	}
}

func kind(k engine.EventKind) func(engine.Event) bool {
	return func(ev engine.Event) bool { return ev.Kind == k }
}

func gateWaiting(k engine.GateKind) func(engine.Event) bool {
	return func(ev engine.Event) bool {
		return ev.Kind == engine.EventGateWaiting && ev.Gate != nil && ev.Gate.Kind == k
	}
}

func messages(evs []engine.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(string(ev.Kind) + ": " + ev.Message + "\n")
	}
	return b.String()
}

func mustWait(t *testing.T, run *enginetest.Run, want engine.Outcome) error {
	t.Helper()
	o, err := run.Wait()
	if o != want {
		t.Fatalf("outcome %q (err %v), want %q; events:\n%s", o, err, want, messages(run.Events()))
	}
	return err
}

func share(tab engine.RouteTable, v string) int {
	total, w := 0, 0
	for _, b := range tab.Backends {
		total += b.Weight
		if b.Version == v {
			w += b.Weight
		}
	}
	if total == 0 {
		return 0
	}
	return w * 100 / total
}

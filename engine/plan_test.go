package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

func planOf(t *testing.T, env *enginetest.Env, spec engine.ServiceSpec) (engine.Plan, error) {
	t.Helper()
	return engine.NewPlan(context.Background(), env.Deps(), spec, target)
}

func wantPlan(t *testing.T, env *enginetest.Env, spec engine.ServiceSpec, want string) {
	t.Helper()
	p, err := planOf(t, env, spec)
	if err != nil {
		t.Fatal(err)
	}
	got := p.String()
	want = strings.TrimLeft(want, "\n")
	if got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
}

func seeded(n int) *enginetest.Env {
	env := enginetest.NewEnv()
	env.SeedServing(svc, "1.0.0", n)
	return env
}

func TestPlanCanaryFromStableFleet(t *testing.T) {
	spec := canarySpec(
		engine.CanaryStep{Weight: 10, Gate: approval()},
		engine.CanaryStep{Weight: 25, Gate: analysis(engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MaxP99: 500 * time.Millisecond, MinRequests: 50})},
		engine.CanaryStep{Weight: 50, Gate: pause(30 * time.Second)},
		engine.CanaryStep{Weight: engine.NoShift, Gate: approval()},
	)
	wantPlan(t, seeded(4), spec, `
web: 1.0.0 → 1.1.0 (canary, 4 replicas)
1. launch 1 × 1.1.0 and wait until healthy
2. shift traffic: 1.0.0 90% → 1.1.0 10%
3. wait for approval
4. shift traffic: 1.0.0 75% → 1.1.0 25%
5. analysis 1m: error rate ≤ 1%, p99 ≤ 500ms, ≥ 50 requests
6. launch 1 × 1.1.0 and wait until healthy
7. shift traffic: 1.0.0 50% → 1.1.0 50%
8. pause 30s
9. wait for approval
10. launch 2 × 1.1.0 and wait until healthy
11. shift traffic: 1.0.0 0% → 1.1.0 100%
12. drain and retire 4 × 1.0.0
`)
}

func TestPlanCanaryWithMoreCanaryInstancesAndAFullStep(t *testing.T) {
	spec := canarySpec(engine.CanaryStep{Weight: 33}, engine.CanaryStep{Weight: 100, Gate: pause(time.Minute)})
	spec.Replicas = 3
	spec.Strategy.Canary.Instances = 2
	wantPlan(t, seeded(3), spec, `
web: 1.0.0 → 1.1.0 (canary, 3 replicas)
1. launch 2 × 1.1.0 and wait until healthy
2. shift traffic: 1.0.0 67% → 1.1.0 33%
3. launch 1 × 1.1.0 and wait until healthy
4. shift traffic: 1.0.0 0% → 1.1.0 100%
5. pause 1m
6. drain and retire 3 × 1.0.0
`)
}

func TestPlanRollingOneByOne(t *testing.T) {
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling})
	spec.Replicas = 3
	wantPlan(t, seeded(3), spec, `
web: 1.0.0 → 1.1.0 (rolling, 3 replicas)
1. launch 1 × 1.1.0 and wait until healthy
2. shift traffic: 1.0.0 66.66% → 1.1.0 33.34%, 1 × 1.0.0 out of rotation
3. drain and retire 1 × 1.0.0
4. launch 1 × 1.1.0 and wait until healthy
5. shift traffic: 1.0.0 33.33% → 1.1.0 66.67%, 1 × 1.0.0 out of rotation
6. drain and retire 1 × 1.0.0
7. launch 1 × 1.1.0 and wait until healthy
8. shift traffic: 1.0.0 0% → 1.1.0 100%, 1 × 1.0.0 out of rotation
9. drain and retire 1 × 1.0.0
`)
}

func TestPlanRollingBatchesWithUnavailabilityAndPause(t *testing.T) {
	spec := baseSpec(engine.StrategySpec{Type: engine.Rolling, Rolling: engine.RollingSpec{BatchSize: 2, MaxSurge: 0, MaxUnavailable: 2, Pause: 10 * time.Second}})
	wantPlan(t, seeded(4), spec, `
web: 1.0.0 → 1.1.0 (rolling, 4 replicas)
1. shift traffic: 1.0.0 100% → 1.1.0 0%, 2 × 1.0.0 out of rotation
2. drain and retire 2 × 1.0.0
3. pause 10s (between batches)
4. launch 2 × 1.1.0 and wait until healthy
5. shift traffic: 1.0.0 0% → 1.1.0 100%, 2 × 1.0.0 out of rotation
6. drain and retire 2 × 1.0.0
7. pause 10s (between batches)
8. launch 2 × 1.1.0 and wait until healthy
9. shift traffic: 1.1.0 100%
`)
}

func TestPlanBlueGreen(t *testing.T) {
	spec := baseSpec(engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{SmokePath: "/smoke", Approval: true, RollbackWindow: 5 * time.Minute}})
	wantPlan(t, seeded(4), spec, `
web: 1.0.0 → 1.1.0 (bluegreen, 4 replicas)
1. launch 4 × 1.1.0 and wait until healthy
2. verify 4 × 1.1.0 directly: health and GET /smoke (2xx)
3. wait for approval (before the switch)
4. shift traffic: 1.0.0 0% → 1.1.0 100%
5. pause 5m (rollback window: 1.0.0 kept warm)
6. drain and retire 4 × 1.0.0
`)
}

func TestPlanFirstDeployLaunchesAndSwitches(t *testing.T) {
	for _, typ := range []engine.StrategyType{engine.Rolling, engine.BlueGreen, engine.Canary} {
		spec := baseSpec(engine.StrategySpec{Type: typ})
		wantPlan(t, enginetest.NewEnv(), spec, `
web: nothing → 1.1.0 (`+string(typ)+`, 4 replicas)
1. launch 4 × 1.1.0 and wait until healthy
2. shift traffic: 1.1.0 100%
`)
	}
}

func TestPlanRefusesTheVersionAlreadyRunningEverywhere(t *testing.T) {
	env := enginetest.NewEnv()
	env.SeedServing(svc, "1.1.0", 4)
	_, err := planOf(t, env, canarySpec(engine.CanaryStep{Weight: 10}))
	if err == nil || err.Error() != "web already runs 1.1.0 on all 4 instances" {
		t.Fatalf("err %v", err)
	}
}

func TestPlanMakesNoChanges(t *testing.T) {
	env := seeded(4)
	before := env.Router.Table()
	if _, err := planOf(t, env, canarySpec(engine.CanaryStep{Weight: 10})); err != nil {
		t.Fatal(err)
	}
	if m := env.Trace.Mutations(); len(m) != 0 {
		t.Errorf("planning mutated: %v", m)
	}
	if after := env.Router.Table(); after.Epoch != before.Epoch {
		t.Errorf("epoch changed")
	}
}

// A crashed run left 2 × 1.1.0 serving 25%: the plan picks up there.
func TestPlanResumesCanaryFromTheCurrentShare(t *testing.T) {
	env := enginetest.NewEnv()
	old := env.Platform.Seed(svc, "1.0.0", "img:1.0.0", 4)
	nw := env.Platform.Seed(svc, "1.1.0", "img:1.1.0", 2)
	var bs []engine.Backend
	for _, in := range old {
		bs = append(bs, engine.Backend{ID: in.ID, Addr: in.Addr, Version: "1.0.0", Weight: 1875})
	}
	for _, in := range nw {
		bs = append(bs, engine.Backend{ID: in.ID, Addr: in.Addr, Version: "1.1.0", Weight: 1250})
	}
	env.Router.Seed(engine.RouteTable{Epoch: 7, Backends: bs})
	spec := canarySpec(
		engine.CanaryStep{Weight: 10, Gate: approval()},
		engine.CanaryStep{Weight: 25, Gate: pause(time.Minute)},
		engine.CanaryStep{Weight: 50, Gate: approval()},
	)
	wantPlan(t, env, spec, `
web: 1.0.0 → 1.1.0 (canary, 4 replicas)
1. shift traffic: 1.0.0 90% → 1.1.0 10% [done]
2. wait for approval [done]
3. shift traffic: 1.0.0 75% → 1.1.0 25% (current share) [done]
4. pause 1m
5. shift traffic: 1.0.0 50% → 1.1.0 50%
6. wait for approval
7. launch 2 × 1.1.0 and wait until healthy
8. shift traffic: 1.0.0 0% → 1.1.0 100%
9. drain and retire 4 × 1.0.0
`)
}

// Healthy new instances without traffic count; unhealthy ones do not.
func TestPlanCountsOnlyHealthyLeftoverInstances(t *testing.T) {
	env := seeded(4)
	nw := env.Platform.Seed(svc, "1.1.0", "img:1.1.0", 2)
	env.Platform.SetHealth(nw[1].ID, &engine.Health{Status: engine.HealthUnhealthy})
	spec := baseSpec(engine.StrategySpec{Type: engine.BlueGreen})
	wantPlan(t, env, spec, `
web: 1.0.0 → 1.1.0 (bluegreen, 4 replicas)
1. launch 3 × 1.1.0 and wait until healthy
2. verify 4 × 1.1.0 directly: health
3. shift traffic: 1.0.0 0% → 1.1.0 100%
4. drain and retire 4 × 1.0.0
`)
}

func TestPlanBlueGreenAfterTheSwitchOnlyRetires(t *testing.T) {
	env := seeded(2)
	nw := env.Platform.Seed(svc, "1.1.0", "img:1.1.0", 2)
	tab := env.Router.Table()
	for i := range tab.Backends {
		tab.Backends[i].Weight = 0
	}
	for _, in := range nw {
		tab.Backends = append(tab.Backends, engine.Backend{ID: in.ID, Addr: in.Addr, Version: "1.1.0", Weight: 5000})
	}
	env.Router.Seed(tab)
	spec := baseSpec(engine.StrategySpec{Type: engine.BlueGreen, BlueGreen: engine.BlueGreenSpec{RollbackWindow: time.Minute}})
	spec.Replicas = 2
	wantPlan(t, env, spec, `
web: 1.0.0 → 1.1.0 (bluegreen, 2 replicas)
1. pause 1m (rollback window: 1.0.0 kept warm)
2. drain and retire 2 × 1.0.0
`)
}

func TestPlanRejectsBadSettings(t *testing.T) {
	for name, spec := range map[string]engine.ServiceSpec{
		"weight over 100":  canarySpec(engine.CanaryStep{Weight: 120}),
		"empty step":       canarySpec(engine.CanaryStep{Weight: engine.NoShift}),
		"pause without d":  canarySpec(engine.CanaryStep{Weight: 10, Gate: engine.Gate{Kind: engine.GatePause}}),
		"unknown strategy": baseSpec(engine.StrategySpec{Type: "yolo"}),
	} {
		if _, err := planOf(t, seeded(1), spec); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

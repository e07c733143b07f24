package swarm_test

import (
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/swarm/swarmtest"
)

// benchCanary is a short canary: one instance at 25%, then 50%, then all.
var benchCanary = engine.StrategySpec{Type: engine.Canary, Canary: engine.CanarySpec{Instances: 1, Steps: []engine.CanaryStep{
	{Weight: 25, Gate: engine.Gate{Kind: engine.GatePause, Pause: time.Second}},
	{Weight: 50, Gate: engine.Gate{Kind: engine.GatePause, Pause: time.Second}},
	{Weight: 100},
}}}

// BenchmarkCanaryReleaseDockerVsSwarm releases the same canary of three
// instances on plain Docker and on Swarm, alternately in each iteration
// (1.0.0 → 1.1.0, then back), and reports the time to release on each,
// the time from launching the canary instance to its first healthy verdict,
// and the ratio of Swarm's release time to Docker's measured in the same run.
func BenchmarkCanaryReleaseDockerVsSwarm(b *testing.B) {
	rigs := map[string]*rig{
		"docker": newRig(b, demotest.Docker(b)),
		"swarm":  newRig(b, swarmtest.Platform(b)),
	}
	for _, r := range rigs {
		r.deployV1()
	}
	took := map[string]time.Duration{}
	launch := map[string]time.Duration{}
	n := 0
	for b.Loop() {
		tag := []string{"1.1.0", "1.0.0"}[n%2]
		n++
		for _, name := range []string{"docker", "swarm"} {
			r := rigs[name]
			rel := r.release(benchCanary, tag, engine.Options{AutoApprove: true})
			start := time.Now()
			r.run(rel, engine.Succeeded)
			took[name] += time.Since(start)
			launching, _ := r.eventOf(rel.ID(), func(ev engine.Event) bool { return ev.Kind == engine.EventLaunching })
			healthy, _ := r.eventOf(rel.ID(), func(ev engine.Event) bool { return ev.Kind == engine.EventHealthy })
			launch[name] += healthy.At.Sub(launching.At)
		}
	}
	for _, name := range []string{"docker", "swarm"} {
		b.ReportMetric(took[name].Seconds()/float64(n), name+"-s/release")
		b.ReportMetric(float64(launch[name].Milliseconds())/float64(n), name+"-launch-ms")
	}
	b.ReportMetric(took["swarm"].Seconds()/took["docker"].Seconds(), "swarm/docker")
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
)

// rollbackBenchRate is the load during the rollback benchmark: the rate
// the emergency path was first measured under (1,000 requests/s, 30%
// POSTs with a body, a fifth of them slow).
const rollbackBenchRate = 1000

// rollbackSamples is how many swaps each leg measures: enough for a p99.
const rollbackSamples = 100

// BenchmarkRollbackSwap measures, under load, how long an emergency
// rollback takes to swap the traffic back to stable: from the exec of
// `cutover rollback` (a new process: config, journal, router, one
// fenced journal write, the table write) and from the console's key (the
// release in this process: Release.Send(CmdRollback), as the console's
// y calls it) to the moment the router's table gives the canary no
// weight. The canary waits at an approval gate at 25%; after each swap
// the rollback is stopped before it removes the canary (the CLI's
// process is killed, the console's release aborted), and the canary's
// table is put back for the next sample.
//
// go test -run '^$' -bench RollbackSwap -benchtime 1x ./cmd/cutover/
func BenchmarkRollbackSwap(b *testing.B) {
	e := newE2EWith(b, e2eService{replicas: 2, strategy: `type: canary
      canary:
        instances: 1
        steps:
          - weight: 25
            approval: true
          - weight: 100`})
	e.deployV1()
	spec := demotest.AppLoadSpec(e.url())
	spec.Rate = rollbackBenchRate
	load := demotest.StartLoad(b, spec)
	e.mustRun(exitWaiting, "deploy", e.svc, "1.1.0", "--detach")
	canary, err := e.router.Table(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if canary.Share("1.1.0") != 0.25 {
		b.Fatalf("the canary's table %+v, want 1.1.0 at 25%%", canary)
	}
	b.ResetTimer()

	cli := make([]time.Duration, 0, rollbackSamples)
	var phases []string
	for range rollbackSamples {
		e.restoreCanary(b, canary)
		d, evs := e.timeCLIRollback(b)
		cli = append(cli, d)
		if len(phases) < 3 {
			phases = append(phases, evs)
		}
	}
	console := make([]time.Duration, 0, rollbackSamples)
	for range rollbackSamples {
		e.restoreCanary(b, canary)
		console = append(console, e.timeConsoleRollback(b))
	}
	b.StopTimer()
	load.Stop()

	c50, c99, cmax := percentiles(cli)
	k50, k99, kmax := percentiles(console)
	b.ReportMetric(ms(c99), "cli-p99-ms")
	b.ReportMetric(ms(k99), "key-p99-ms")
	fmt.Printf("\nRollback swap under %.0f requests/s (%d lost), %d samples each:\n\n", load.Rate(), load.Failed(), rollbackSamples)
	fmt.Println("| path | p50 | p99 | max | goal (p99) |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: |")
	fmt.Printf("| `cutover rollback` exec → swap | %.1f ms | %.1f ms | %.1f ms | ≤ 50 ms |\n", ms(c50), ms(c99), ms(cmax))
	fmt.Printf("| console key (Release.Send) → swap | %.1f ms | %.1f ms | %.1f ms | ≤ 20 ms |\n", ms(k50), ms(k99), ms(kmax))
	fmt.Printf("\nWhere a CLI rollback's time goes (first samples, ms after exec):\n%s\n", strings.Join(phases, "\n"))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentiles are the p50, p99 and max of ds.
func percentiles(ds []time.Duration) (p50, p99, top time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99), s[len(s)-1]
}

// restoreCanary puts the canary's table back, under a newer epoch, and
// makes sure the canary still runs (a stopped rollback may have removed
// it: then the release is deployed to its gate again).
func (e *e2e) restoreCanary(b *testing.B, canary engine.RouteTable) {
	b.Helper()
	ctx := context.Background()
	insts, err := e.platform.Instances(ctx, e.svc)
	if err != nil {
		b.Fatal(err)
	}
	present := map[string]bool{}
	for _, in := range insts {
		present[in.ID] = in.State == engine.StateRunning
	}
	for _, bk := range canary.Backends {
		if !present[bk.ID] {
			b.Fatalf("instance %s of the canary's table no longer runs: a stopped rollback went further than the swap", bk.ID)
		}
	}
	cur, err := e.router.Table(ctx)
	if err != nil {
		b.Fatal(err)
	}
	t := canary
	t.Epoch, t.Writer = cur.Epoch+1, "bench"
	if err := e.router.Apply(ctx, t); err != nil {
		b.Fatal(err)
	}
}

// swapped waits for the router's table to give version no weight under an
// epoch newer than after, polling the admin API, and returns when it saw it.
func (e *e2e) swapped(b *testing.B, version string, after uint64, within time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		t, err := e.router.Table(context.Background())
		now := time.Now()
		if err == nil && t.Epoch > after && t.Weights()[version] == 0 {
			return now
		}
		if now.After(deadline) {
			b.Fatalf("no swap within %s: table %+v (%v)", within, t, err)
		}
	}
}

// timeCLIRollback execs `cutover rollback`, times it to the swap, then
// kills it, and says when its events came (ms after exec).
func (e *e2e) timeCLIRollback(b *testing.B) (time.Duration, string) {
	b.Helper()
	cur, err := e.router.Table(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cmd := e.command("rollback", e.svc, "-o", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var phases atomic.Value
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		var seen []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev engine.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				seen = append(seen, fmt.Sprintf("%s %.1f", ev.Kind, ms(ev.At.Sub(start))))
				phases.Store(strings.Join(seen, ", "))
			}
		}
	}()
	at := e.swapped(b, "1.1.0", cur.Epoch, 10*time.Second)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	p, _ := phases.Load().(string)
	return at.Sub(start), p
}

// timeConsoleRollback resumes the waiting release in this process, as the
// console's u does, sends it a rollback at its gate, as the console's y
// does, and times it to the swap; then aborts it before it removes the canary.
func (e *e2e) timeConsoleRollback(b *testing.B) time.Duration {
	b.Helper()
	cfg, err := config.Load(filepath.Join(e.dir, "cutover.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	old := os.Getenv("CUTOVER_LABELS")
	os.Setenv("CUTOVER_LABELS", engine.LabelTest+"=1")
	defer os.Setenv("CUTOVER_LABELS", old)
	be, err := newConsoleBackend(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	rel, err := be.Resume(ctx, e.svc)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = rel.Run(ctx)
	}()
	for deadline := time.Now().Add(30 * time.Second); rel.Snapshot().State != engine.ReleaseWaiting; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("the resumed release is %s, not waiting at its gate", rel.Snapshot().State)
		}
	}
	cur, err := e.router.Table(ctx)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := rel.Send(engine.CmdRollback); err != nil {
		b.Fatal(err)
	}
	at := e.swapped(b, "1.1.0", cur.Epoch-1, 10*time.Second)
	_ = rel.Send(engine.CmdAbort)
	<-done
	return at.Sub(start)
}

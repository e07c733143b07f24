package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/registry"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
)

// The example config's canary, converted into the engine's settings: each
// step keeps its weight and gate, a gate-only step shifts nothing, and an
// analysis step takes the limits it does not write from the service.
func TestSpecOfCarriesEveryCanaryStepAndInheritedAnalysisLimits(t *testing.T) {
	cfg, err := config.Load("../../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cfg.Service("web")
	if err != nil {
		t.Fatal(err)
	}
	spec := specOf(svc)
	if spec.Replicas != 4 || spec.Strategy.Type != engine.Canary || spec.OnFailure.BeforeTraffic != engine.FailRollback {
		t.Errorf("spec %+v", spec)
	}
	steps := spec.Strategy.Canary.Steps
	want := []struct {
		weight int
		gate   engine.GateKind
	}{{10, engine.GatePause}, {25, engine.GateApproval}, {50, engine.GateAnalysis}, {engine.NoShift, engine.GateAnalysis},
		{engine.NoShift, engine.GateWebhook}, {100, ""}}
	if len(steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(steps), len(want), steps)
	}
	for i, w := range want {
		if steps[i].Weight != w.weight || steps[i].Gate.Kind != w.gate {
			t.Errorf("step %d: weight %d gate %q, want %d %q", i+1, steps[i].Weight, steps[i].Gate.Kind, w.weight, w.gate)
		}
	}
	a := steps[2].Gate.Analysis
	if a.Window != 2*time.Minute || a.MaxP99 != 500*time.Millisecond || a.MaxErrorRate != 0.01 || a.MinRequests != 50 || a.MaxP99VsStable != 1.5 {
		t.Errorf("step 3 analysis %+v: want its own window and p99, the service's other limits", a)
	}
	if steps[0].Gate.Pause != 30*time.Second {
		t.Errorf("step 1 pause %v, want 30s", steps[0].Gate.Pause)
	}
	if q := a.Queries; len(q) != 1 || q[0].Name != "error-rate" || *q[0].Max != 0.01 || q[0].Interval != 10*time.Second || q[0].ConsecutiveErrorLimit != 4 ||
		!strings.Contains(q[0].Query, "{{.Canary}}") {
		t.Errorf("step 3 queries %+v", q)
	}
	if h := steps[4].Gate.Webhook; h.URL != "https://ci.example.com/cutover/confirm" || h.Timeout != 10*time.Second || h.SecretFile == "" {
		t.Errorf("step 5 webhook %+v", h)
	}
}

// status prints a running analysis against each limit, and how fresh
// the figures are.
func TestStatusPrintsTheRunningAnalysis(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	a := engine.AnalysisResult{Verdict: engine.VerdictPending, Window: time.Minute, Elapsed: 20 * time.Second, At: now.Add(-3 * time.Second),
		Checks:  []engine.Check{{Name: "requests", Measured: "230", Limit: "≥ 50", OK: true}, {Name: "error rate", Measured: "10%", Limit: "1%"}},
		Queries: []engine.QueryCheck{{Name: "error-rate", Limit: "≤ 0.05", Verdict: engine.VerdictPending}}}
	var b strings.Builder
	printAnalysis(&b, a, now)
	want := `analysis running, 20s of 1m, 40s left (figures of 3s ago)
         ✓ requests 230 ≥ 50
         × error rate 10% > 1%
         … error-rate not measured yet, want ≤ 0.05
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Secret and token files are read before a release starts: a missing one
// is named; with none missing, the hooks carry a metrics source, a caller
// and a notifier.
func TestOpenHooksReadsTheSecretFilesUpFront(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := `prometheus: {url: "http://127.0.0.1:9090", token_file: prom.token}
notifications:
  - {url: "http://127.0.0.1:9000/hook", secret_file: hook.secret, template: '{"text": {{json .Summary}}}'}
services:
  web: {image: a}
`
	write("cutover.yaml", file)
	cfg, err := config.Load(filepath.Join(dir, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openHooks(cfg, nil); err == nil || !strings.Contains(err.Error(), "prometheus.token_file") {
		t.Fatalf("missing token file: %v", err)
	}
	write("prom.token", "t0ken\n")
	write("hook.secret", "  \n")
	if _, err := openHooks(cfg, nil); err == nil || !strings.Contains(err.Error(), "notifications[0].secret_file") || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty secret file: %v", err)
	}
	write("hook.secret", "s3cret\n")
	h, err := openHooks(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	var d engine.Deps
	h.apply(&d)
	if d.Metrics == nil || d.Webhooks == nil || d.Notifier == nil {
		t.Errorf("deps %+v: want all three hooks", d)
	}
}

// The example's service on Swarm: its constraints, limits and reservations
// reach the engine in Swarm's units, its network unchanged; a service on
// Docker gets none.
func TestSpecOfCarriesTheSwarmBlock(t *testing.T) {
	cfg, err := config.Load("../../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	api, err := cfg.Service("api")
	if err != nil {
		t.Fatal(err)
	}
	spec := specOf(api)
	if want := []string{"node.role==worker", "node.labels.zone!=b"}; !slices.Equal(spec.Placement, want) {
		t.Errorf("placement %q, want %q", spec.Placement, want)
	}
	want := engine.Resources{LimitCPUs: 1, LimitMemory: 512 << 20, ReserveCPUs: 0.25, ReserveMemory: 128 << 20}
	if spec.Resources != want {
		t.Errorf("resources %+v, want %+v", spec.Resources, want)
	}
	if spec.Network != "api-net" {
		t.Errorf("network %q, want the service's overlay network api-net", spec.Network)
	}
	web, err := cfg.Service("web")
	if err != nil {
		t.Fatal(err)
	}
	if spec := specOf(web); spec.Placement != nil || spec.Resources != (engine.Resources{}) {
		t.Errorf("a service on docker got placement %q and resources %+v", spec.Placement, spec.Resources)
	}
}

// A swarm service from ECR gives its nodes the registry's login for its
// own registry only, and makes the registry when a launch first asks, not
// when the command starts (a rollback's swap never waits for AWS).
func TestSwarmNodesGetTheServicesECRLoginOnFirstLaunch(t *testing.T) {
	endpoint := ecrtest.Endpoint(t)
	ctx := context.Background()
	cfg, err := config.Load(ecrConfig(t, endpoint, "api", "    platform: swarm\n"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cfg.Service("api")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{cfg: cfg, svc: svc}
	login := s.nodeLogin()
	if login == nil || s.ecr != nil {
		t.Fatalf("node login %v, registry made up front %v: want a login and no registry yet", login, s.ecr)
	}
	if h, err := login.RegistryAuth(ctx, "registry.example.com/api@sha256:0123"); err != nil || h != "" {
		t.Errorf("login for another registry's image: %q, %v; want none", h, err)
	}
	auth, err := s.ecr.Auth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := login.RegistryAuth(ctx, auth.Registry+"/api@sha256:0123")
	if err != nil {
		t.Fatal(err)
	}
	var got registry.AuthConfig
	if b, err := base64.URLEncoding.DecodeString(h); err != nil || json.Unmarshal(b, &got) != nil ||
		got.Username != "AWS" || got.Password != auth.Password || got.ServerAddress != auth.Registry {
		t.Errorf("login for the service's own image: %+v (%v); want AWS's token for %s", got, err, auth.Registry)
	}

	svc.Platform = config.PlatformDocker
	if login := s.nodeLogin(); login != nil {
		t.Errorf("a docker service has a node login %v", login)
	}
}

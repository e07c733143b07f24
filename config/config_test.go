package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("cutover.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: unexpected errors:\n%v", err)
	}
	return c
}

// parseErrors parses src, which must fail, and returns the error lines.
func parseErrors(t *testing.T, src string) []string {
	t.Helper()
	c, err := Parse("cutover.yaml", []byte(src))
	if err == nil {
		out, _ := c.Marshal()
		t.Fatalf("Parse accepted the file; effective config:\n%s", out)
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want config.Errors: %v", err, err)
	}
	return strings.Split(err.Error(), "\n")
}

func TestMinimalFileGetsDefaults(t *testing.T) {
	c, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantDir, _ := filepath.Abs("testdata")
	if c.Dir != wantDir {
		t.Errorf("Dir = %q, want %q", c.Dir, wantDir)
	}
	if got, want := c.StateDir(), filepath.Join(wantDir, ".cutover"); got != want {
		t.Errorf("StateDir() = %q, want %q", got, want)
	}
	if c.Version != 1 || c.RawStateDir != ".cutover" {
		t.Errorf("version %d state_dir %q, want 1 and .cutover", c.Version, c.RawStateDir)
	}
	r := c.Routers["main"]
	if r == nil || len(c.Routers) != 1 {
		t.Fatalf("routers = %v, want exactly the default router main", c.RouterNames())
	}
	if r.Name != "main" || r.Listen != "127.0.0.1:8080" || r.Admin != "unix:.cutover/router-main.sock" {
		t.Errorf("default router = %+v", *r)
	}
	if network, addr := c.AdminAddr(r); network != "unix" || addr != filepath.Join(wantDir, ".cutover/router-main.sock") {
		t.Errorf("AdminAddr = %s %s, want the socket under the state dir", network, addr)
	}

	s, err := c.Service("")
	if err != nil {
		t.Fatalf("Service(\"\") with one service: %v", err)
	}
	want := &Service{
		Name:     "web",
		Image:    "cutover-demo",
		Source:   Source{Type: SourceDocker},
		Platform: PlatformDocker,
		Replicas: 1,
		Port:     8080,
		Router:   "main",
		Health: Health{
			Path: "/healthz", Interval: time.Second, Timeout: time.Second, Successes: 2, Failures: 3,
		},
		StartTimeout: time.Minute,
		DrainTimeout: 30 * time.Second,
		StopGrace:    10 * time.Second,
		OnFailure:    OnFailure{BeforeTraffic: ActionRollback, AfterTraffic: ActionPause},
		Strategy: Strategy{
			Type:      StrategyRolling,
			Rolling:   Rolling{BatchSize: 1, MaxSurge: 1},
			BlueGreen: BlueGreen{RollbackWindow: 5 * time.Minute},
			Canary:    Canary{Instances: 1, Steps: DefaultSteps()},
		},
		Analysis: Analysis{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("defaulted service:\n got %+v\nwant %+v", *s, *want)
	}
}

func TestExampleFileIsValidAndUsesEveryFeature(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web, err := c.Service("web")
	if err != nil {
		t.Fatal(err)
	}
	if web.Port != 8080 || web.Health.Successes != 2 {
		t.Errorf("merge key <<: *defaults not applied: port %d successes %d", web.Port, web.Health.Successes)
	}
	if web.Env["WORKERS"] != "4" {
		t.Errorf("env WORKERS = %q, want the number as text", web.Env["WORKERS"])
	}
	steps := web.Strategy.Canary.Steps
	gates := []GateKind{}
	for _, st := range steps {
		gates = append(gates, st.Gate())
	}
	if want := []GateKind{GatePause, GateApproval, GateAnalysis, GateAnalysis, GateWebhook, GateNone}; !reflect.DeepEqual(gates, want) {
		t.Errorf("gates = %v, want %v", gates, want)
	}
	if h := steps[4].Webhook; h.Timeout != 10*time.Second || h.SecretFile == "" {
		t.Errorf("webhook = %+v", h)
	}
	// Queries are inherited like the other limits.
	if q := steps[2].Analysis.Queries; len(q) != 1 || q[0].Name != "error-rate" || *q[0].Max != 0.01 || q[0].Interval != 10*time.Second || q[0].ConsecutiveErrorLimit != 4 {
		t.Errorf("step queries = %+v", q)
	}
	if c.Prometheus == nil || c.Prometheus.URL != "http://127.0.0.1:9090" || len(c.Notifications) != 2 || c.Notifications[1].Timeout != DefaultNotifyTimeout {
		t.Errorf("prometheus %+v, notifications %+v", c.Prometheus, c.Notifications)
	}
	// Step 2 overrides window and max_p99 and inherits the rest from the service.
	a := steps[2].Analysis
	if a.Window != 2*time.Minute || a.MaxP99 != 500*time.Millisecond || a.MaxErrorRateVsStable != 2 || a.MinRequests != 50 {
		t.Errorf("step analysis = %+v, want its own window/max_p99 and the service's other limits", *a)
	}
	if steps[3].Weight != nil || !reflect.DeepEqual(*steps[3].Analysis, web.Analysis) {
		t.Errorf("gate-only step = %+v, want no weight and the service analysis", steps[3])
	}
	api, _ := c.Service("api")
	if api.Source.Type != SourceECR || api.Source.Repository != "api" || api.Source.RegistryID != "123456789012" {
		t.Errorf("api source = %+v, want ecr with repository defaulted to the image", api.Source)
	}
	if api.Platform != PlatformSwarm || api.Network != "api-net" {
		t.Errorf("api platform %q network %q, want swarm on api-net", api.Platform, api.Network)
	}
	if sw := api.Swarm; sw == nil || len(sw.Constraints) != 2 || sw.Limits.CPUs != 1 || sw.Limits.MemoryBytes() != 512<<20 ||
		sw.Reservations.CPUs != 0.25 || sw.Reservations.MemoryBytes() != 128<<20 {
		t.Errorf("api swarm settings = %+v, want two constraints, limits 1 CPU 512m, reservations 0.25 CPU 128m", sw)
	}
	if network, addr := c.AdminAddr(c.Routers["edge"]); network != "tcp" || addr != "127.0.0.1:9090" {
		t.Errorf("edge admin = %s %s", network, addr)
	}
	if lb := c.Routers["lb"]; lb.Type != RouterHAProxy || lb.Admin != "" || lb.Backend != "shop" || c.Routers["edge"].Type != RouterBuiltin {
		t.Errorf("lb = %+v, want an haproxy router with no admin address, and edge builtin", lb)
	}
}

func TestMarshalRoundTripsToEqualConfig(t *testing.T) {
	tricky := `
services:
  web:
    image: localhost:5000/team/web
    env: {A: "true", B: 007, C: "", D: "has: colon", E: "#hash"}
    command: [":8080", "-x", "yes", "1.0"]
    strategy:
      type: canary
      canary:
        steps:
          - weight: 0
          - approval: true
          - weight: 100
            analysis:
              max_p99: 1h30m
`
	for _, name := range []string{"example.yaml", "testdata/minimal.yaml", "tricky"} {
		t.Run(name, func(t *testing.T) {
			var c *Config
			if name == "tricky" {
				c = mustParse(t, tricky)
			} else {
				var err error
				if c, err = Load(name); err != nil {
					t.Fatal(err)
				}
			}
			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(c.File, out)
			if err != nil {
				t.Fatalf("effective config does not re-parse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(c, again) {
				t.Errorf("re-parsed config differs\nfirst:  %#v\nsecond: %#v\nYAML:\n%s", c, again, out)
			}
			out2, _ := again.Marshal()
			if string(out) != string(out2) {
				t.Errorf("Marshal is not stable:\n%s\n---\n%s", out, out2)
			}
		})
	}
}

func TestMarshalWritesDurationsAsPeopleDo(t *testing.T) {
	c := mustParse(t, "services:\n  web:\n    image: x\n    start_timeout: 90m\n    drain_timeout: 1500ms\n")
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"start_timeout: 1h30m\n", "drain_timeout: 1.5s\n", "stop_grace: 10s\n", "rollback_window: 5m\n", "pause: 0s\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatDurationDropsZeroUnits(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Second: "1s", 5 * time.Minute: "5m", 2 * time.Hour: "2h",
		time.Hour + 30*time.Second: "1h0m30s", 90 * time.Second: "1m30s", 250 * time.Millisecond: "250ms",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(want); err != nil || back != d {
			t.Errorf("%q does not parse back to %v", want, d)
		}
	}
}

func TestLoadOfMissingFileIsAnOrdinaryError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	var es Errors
	if err == nil || errors.As(err, &es) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want a wrapped not-exist error", err)
	}
}

func TestServiceLookupNamesTheKnownServices(t *testing.T) {
	c := mustParse(t, "routers:\n  w: {listen: ':1'}\n  a: {listen: ':2'}\nservices:\n  web: {image: a, router: w}\n  api: {image: b, router: a}\n")
	if s, err := c.Service("api"); err != nil || s.Name != "api" {
		t.Fatalf("Service(api) = %v, %v", s, err)
	}
	_, err := c.Service("db")
	if err == nil || err.Error() != `cutover.yaml: unknown service "db" (known: api, web)` {
		t.Errorf("Service(db) error = %v", err)
	}
	_, err = c.Service("")
	if err == nil || err.Error() != `cutover.yaml: name a service: there are 2 (api, web)` {
		t.Errorf("Service(\"\") error = %v", err)
	}
}

func TestServiceRouterDefaultsToTheOnlyRouter(t *testing.T) {
	c := mustParse(t, "routers:\n  edge: {listen: \":9000\"}\nservices:\n  web: {image: a}\n")
	if got := c.Services["web"].Router; got != "edge" {
		t.Errorf("router = %q, want the only router edge", got)
	}
	if got := c.Routers["edge"].Admin; got != "unix:.cutover/router-edge.sock" {
		t.Errorf("admin = %q, want a socket named after the router in the state dir", got)
	}
}

func TestMaxSurgeDefaultsToBatchSizeUnlessWritten(t *testing.T) {
	c := mustParse(t, `
routers:
  ra: {listen: ":1"}
  rb: {listen: ":2"}
services:
  a: {image: a, replicas: 4, router: ra, strategy: {rolling: {batch_size: 2}}}
  b: {image: b, replicas: 4, router: rb, strategy: {rolling: {batch_size: 2, max_surge: 0, max_unavailable: 2}}}
`)
	if got := c.Services["a"].Strategy.Rolling.MaxSurge; got != 2 {
		t.Errorf("a max_surge = %d, want batch_size 2", got)
	}
	if got := c.Services["b"].Strategy.Rolling.MaxSurge; got != 0 {
		t.Errorf("b max_surge = %d, want the written 0", got)
	}
}

func TestMergeKeysYieldToKeysWrittenInPlace(t *testing.T) {
	c := mustParse(t, `
x-base: &base
  replicas: 3
  port: 9000
services:
  web:
    port: 7000
    <<: *base
    image: a
`)
	s := c.Services["web"]
	if s.Replicas != 3 || s.Port != 7000 {
		t.Errorf("replicas %d port %d, want 3 from the anchor and 7000 written in place", s.Replicas, s.Port)
	}
}

func TestEmptyBlocksKeepDefaults(t *testing.T) {
	c := mustParse(t, "services:\n  web:\n    image: a\n    health:\n    replicas:\n    strategy:\n      canary:\n        steps:\n          - weight: 20\n            analysis:\n")
	s := c.Services["web"]
	if s.Health.Path != "/healthz" || s.Replicas != 1 {
		t.Errorf("empty values changed defaults: %+v", s)
	}
	if a := s.Strategy.Canary.Steps[0].Analysis; a == nil || !reflect.DeepEqual(*a, DefaultAnalysis()) {
		t.Errorf("empty analysis block = %v, want the default analysis switched on", a)
	}
}

func TestSelfReferringAndExplodingAliasesAreRefusedQuickly(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("x-0: &l0 {port: 80}\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&laughs, "x-%d: &l%d {<<: [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]}\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	laughs.WriteString("services:\n  web:\n    image: a\n    <<: *l12\n")
	for name, src := range map[string]string{
		"merge of itself": "services:\n  web: &x\n    image: a\n    <<: *x\n",
		"billion laughs":  laughs.String(),
	} {
		t.Run(name, func(t *testing.T) {
			got := parseErrors(t, src)
			if len(got) != 1 || !strings.HasSuffix(got[0], "aliases or merge keys nest too deeply or refer to themselves") {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestQueriesWebhooksAndNotificationsGetTheirDefaults(t *testing.T) {
	c := mustParse(t, `prometheus: {url: "http://127.0.0.1:9090"}
notifications: [{url: "http://127.0.0.1:9000/hook", secret_file: hook.secret}]
services:
  web:
    image: a
    analysis:
      queries: [{name: errors, query: up, max: 0.05}]
    strategy:
      canary:
        steps:
          - weight: 10
            webhook: {url: "http://127.0.0.1:9000/confirm"}
          - analysis: {window: 30s}
`)
	if p := c.Prometheus; p.Timeout != DefaultPrometheusTimeout {
		t.Errorf("prometheus %+v", p)
	}
	if n := c.Notifications[0]; n.Timeout != DefaultNotifyTimeout || n.SecretFile != "hook.secret" || n.Template != "" {
		t.Errorf("notification %+v", n)
	}
	steps := c.Services["web"].Strategy.Canary.Steps
	if h := steps[0].Webhook; h == nil || h.Timeout != DefaultWebhookTimeout {
		t.Errorf("webhook %+v", h)
	}
	q := steps[1].Analysis.Queries
	if len(q) != 1 || q[0].Interval != 10*time.Second || q[0].ConsecutiveErrorLimit != 4 || q[0].FailureLimit != 0 || q[0].Min != nil {
		t.Errorf("inherited query %+v", q)
	}
}

package config

import (
	"reflect"
	"strings"
	"testing"
)

// svc builds a file with one service web whose body is the given lines,
// indented under it. The service starts on line 2, its first body line is 3.
func svc(body ...string) string {
	var b strings.Builder
	b.WriteString("services:\n  web:\n")
	for _, l := range body {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// prom is a top-level prometheus block, for files with queries (line 1).
const prom = "prometheus: {url: \"http://127.0.0.1:9090\"}\n"

// haproxyRouter is a router main of type haproxy on lines 1-6, plus the
// extra lines given.
func haproxyRouter(extra ...string) string {
	s := "routers:\n  main:\n    type: haproxy\n    socket: /run/haproxy/admin.sock\n    backend: web\n    map: /etc/haproxy/cutover.map\n"
	for _, l := range extra {
		s += "    " + l + "\n"
	}
	return s
}

func TestEveryRuleReportsFileLineAndPath(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"zero replicas", svc("image: a", "replicas: 0"),
			"cutover.yaml:4: services.web.replicas: must be at least 1, got 0"},
		{"port too high", svc("image: a", "port: 70000"),
			"cutover.yaml:4: services.web.port: must be 1..65535, got 70000"},
		{"port zero", svc("image: a", "port: 0"),
			"cutover.yaml:4: services.web.port: must be 1..65535, got 0"},
		{"missing image", svc("replicas: 2"),
			"cutover.yaml:2: services.web.image: required: the image repository to release"},
		{"image with tag", svc("image: demo:v1"),
			`cutover.yaml:3: services.web.image: want a repository without a tag or digest (the tag is picked at release time), got "demo:v1"`},
		{"image with digest", svc("image: demo@sha256:abc"),
			`cutover.yaml:3: services.web.image: want a repository without a tag or digest (the tag is picked at release time), got "demo@sha256:abc"`},
		{"service name", "services:\n  Web_1:\n    image: a\n",
			`cutover.yaml:2: services.Web_1: name "Web_1" must be lowercase letters, digits and dashes, starting and ending with a letter or digit (at most 63)`},
		{"no services", "version: 1\n",
			"cutover.yaml:1: services: at least one service is required"},
		{"version", "version: 2\n" + svc("image: a"),
			"cutover.yaml:1: version: this cutover reads version 1, got 2"},
		{"unknown strategy", svc("image: a", "strategy:", "  type: linear"),
			`cutover.yaml:5: services.web.strategy.type: want rolling, bluegreen or canary, got "linear"`},
		{"negative duration", svc("image: a", "drain_timeout: -5s"),
			"cutover.yaml:4: services.web.drain_timeout: must not be negative, got -5s"},
		{"duration without unit", svc("image: a", "stop_grace: 10"),
			"cutover.yaml:4: services.web.stop_grace: want a duration with a unit such as 30s or 1m30s, got integer 10"},
		{"duration garbage", svc("image: a", "stop_grace: soon"),
			`cutover.yaml:4: services.web.stop_grace: want a duration such as 30s or 1m30s, got "soon"`},
		{"zero start timeout", svc("image: a", "start_timeout: 0s"),
			"cutover.yaml:4: services.web.start_timeout: must be more than 0, got 0s"},
		{"health path", svc("image: a", "health:", "  path: healthz"),
			`cutover.yaml:5: services.web.health.path: must start with '/', got "healthz"`},
		{"health interval zero", svc("image: a", "health:", "  interval: 0s"),
			"cutover.yaml:5: services.web.health.interval: must be more than 0, got 0s"},
		{"health successes", svc("image: a", "health: {successes: 0}"),
			"cutover.yaml:4: services.web.health.successes: must be at least 1, got 0"},
		{"health failures", svc("image: a", "health: {failures: 0}"),
			"cutover.yaml:4: services.web.health.failures: must be at least 1, got 0"},
		{"failure action", svc("image: a", "on_failure:", "  after_traffic: ignore"),
			`cutover.yaml:5: services.web.on_failure.after_traffic: want rollback or pause, got "ignore"`},
		{"batch size above replicas", svc("image: a", "replicas: 2", "strategy:", "  rolling:", "    batch_size: 3"),
			"cutover.yaml:7: services.web.strategy.rolling.batch_size: must be 1..replicas (2), got 3"},
		{"batch size zero", svc("image: a", "strategy: {rolling: {batch_size: 0, max_surge: 1}}"),
			"cutover.yaml:4: services.web.strategy.rolling.batch_size: must be 1..replicas (1), got 0"},
		{"max unavailable", svc("image: a", "replicas: 2", "strategy: {rolling: {max_unavailable: 2}}"),
			"cutover.yaml:5: services.web.strategy.rolling.max_unavailable: must be 0..replicas-1 (1), got 2"},
		{"surge plus unavailable", svc("image: a", "replicas: 4", "strategy: {rolling: {batch_size: 2, max_surge: 1}}"),
			"cutover.yaml:5: services.web.strategy.rolling: max_surge + max_unavailable (1 + 0) must be at least batch_size (2), or a batch cannot be replaced"},
		{"smoke path", svc("image: a", "strategy: {bluegreen: {smoke_path: smoke}}"),
			`cutover.yaml:4: services.web.strategy.bluegreen.smoke_path: must start with '/', got "smoke"`},
		{"canary instances above replicas", svc("image: a", "replicas: 2", "strategy: {canary: {instances: 3}}"),
			"cutover.yaml:5: services.web.strategy.canary.instances: must be 1..replicas (2), got 3"},
		{"canary instances zero", svc("image: a", "strategy: {canary: {instances: 0}}"),
			"cutover.yaml:4: services.web.strategy.canary.instances: must be 1..replicas (1), got 0"},
		{"weight over 100", svc("image: a", "strategy:", "  canary:", "    steps:", "      - weight: 10", "      - weight: 150"),
			"cutover.yaml:8: services.web.strategy.canary.steps[1].weight: must be 0..100, got 150"},
		{"negative weight", svc("image: a", "strategy: {canary: {steps: [{weight: -1}]}}"),
			"cutover.yaml:4: services.web.strategy.canary.steps[0].weight: must be 0..100, got -1"},
		{"weights going down", svc("image: a", "strategy:", "  canary:", "    steps:", "      - weight: 50", "      - approval: true", "      - weight: 20"),
			"cutover.yaml:9: services.web.strategy.canary.steps[2].weight: must not be lower than the weight before it (50 at steps[0]), got 20"},
		{"two gates", svc("image: a", "strategy:", "  canary:", "    steps:", "      - weight: 10", "        approval: true", "        analysis: {}"),
			"cutover.yaml:7: services.web.strategy.canary.steps[0]: a step has at most one gate, got approval and analysis; split it into steps"},
		{"empty step", svc("image: a", "strategy:", "  canary:", "    steps:", "      - {}"),
			"cutover.yaml:7: services.web.strategy.canary.steps[0]: a step needs a weight, a gate (approval, pause, analysis, webhook), or both"},
		{"no steps", svc("image: a", "strategy:", "  canary:", "    steps: []"),
			"cutover.yaml:6: services.web.strategy.canary.steps: must have at least one step (leave steps out for the default ones)"},
		{"error rate over 1", svc("image: a", "analysis:", "  max_error_rate: 5"),
			"cutover.yaml:5: services.web.analysis.max_error_rate: must be 0..1 (a fraction: 0.01 is 1%), got 5"},
		{"step error rate negative", svc("image: a", "strategy:", "  canary:", "    steps:", "      - analysis: {max_error_rate: -0.1}"),
			"cutover.yaml:7: services.web.strategy.canary.steps[0].analysis.max_error_rate: must be 0..1 (a fraction: 0.01 is 1%), got -0.1"},
		{"ratio below 1", svc("image: a", "analysis: {max_p99_vs_stable: 0.5}"),
			"cutover.yaml:4: services.web.analysis.max_p99_vs_stable: must be 0 (off) or at least 1 (a ratio to stable), got 0.5"},
		{"analysis window", svc("image: a", "analysis: {window: 0s}"),
			"cutover.yaml:4: services.web.analysis.window: must be more than 0, got 0s"},
		{"min requests", svc("image: a", "analysis: {min_requests: -1}"),
			"cutover.yaml:4: services.web.analysis.min_requests: must be at least 0, got -1"},
		{"unknown router", svc("image: a", "router: edge"),
			`cutover.yaml:4: services.web.router: unknown router "edge" (known: main)`},
		{"router ambiguous", "routers:\n  a: {listen: \":1\"}\n  b: {listen: \":2\"}\n" + svc("image: a"),
			"cutover.yaml:5: services.web.router: required when there are 2 routers (a, b)"},
		{"router listen", "routers:\n  main:\n    listen: localhost\n" + svc("image: a"),
			`cutover.yaml:3: routers.main.listen: want host:port, got "localhost"`},
		{"router listen port", "routers:\n  main: {listen: \"127.0.0.1:99999\"}\n" + svc("image: a"),
			`cutover.yaml:2: routers.main.listen: port must be 1..65535, got "99999"`},
		{"tcp admin without token", "routers:\n  main:\n    admin: 127.0.0.1:9090\n" + svc("image: a"),
			"cutover.yaml:2: routers.main.token_file: required when admin is a TCP address (127.0.0.1:9090): anyone who can reach it could move traffic"},
		{"same listen twice", "routers:\n  a: {listen: \":1\"}\n  b: {listen: \":1\"}\n" + svc("image: a", "router: a"),
			`cutover.yaml:3: routers.b.listen: :1 is already an address of router "a"`},
		{"same admin twice", "routers:\n  a: {listen: \":1\", admin: \"unix:/run/r.sock\"}\n  b: {listen: \":2\", admin: \"unix:/run/r.sock\"}\n" + svc("image: a", "router: a"),
			"cutover.yaml:3: routers.b.admin: unix:/run/r.sock is already an address of router \"a\""},
		{"two services behind one router", "services:\n  web: {image: a}\n  api: {image: b}\n",
			`cutover.yaml:2: services.web.router: router "main" already serves service "api"; a router serves one service: add a router for web`},
		{"router name", "routers:\n  Main: {}\n" + svc("image: a"),
			`cutover.yaml:2: routers.Main: name "Main" must be lowercase letters, digits and dashes, starting and ending with a letter or digit (at most 63)`},
		{"router type", "routers:\n  main: {type: nginx}\n" + svc("image: a"),
			`cutover.yaml:2: routers.main.type: want builtin or haproxy, got "nginx"`},
		{"haproxy key on a builtin router", "routers:\n  main:\n    socket: /run/haproxy/admin.sock\n" + svc("image: a"),
			"cutover.yaml:3: routers.main.socket: only used with type haproxy"},
		{"builtin key on an haproxy router", haproxyRouter("token_file: /etc/token") + svc("image: a"),
			"cutover.yaml:7: routers.main.token_file: only used with type builtin: cutover drives HAProxy through its runtime API (socket)"},
		{"haproxy router without a socket", "routers:\n  main: {type: haproxy, backend: web, map: /m}\n" + svc("image: a"),
			"cutover.yaml:2: routers.main.socket: required for type haproxy: the path of HAProxy's runtime API socket (stats socket PATH level admin)"},
		{"haproxy backend name", "routers:\n  main: {type: haproxy, socket: /s, map: /m, backend: \"web be\"}\n" + svc("image: a"),
			`cutover.yaml:2: routers.main.backend: "web be" is not an HAProxy backend name (letters, digits, '.', '-', '_', ':')`},
		{"one haproxy backend for two routers", "routers:\n  a: {type: haproxy, listen: \":1\", socket: /s, backend: be, map: /m1}\n  b: {type: haproxy, listen: \":2\", socket: /s, backend: be, map: /m2}\n" + svc("image: a", "router: a"),
			`cutover.yaml:3: routers.b.backend: backend be at unix:/s is already an address of router "a"`},
		{"p99 behind haproxy", haproxyRouter() + svc("image: a", "analysis: {max_p99: 500ms}"),
			"cutover.yaml:10: services.web.analysis.max_p99: router main is type haproxy, which keeps no latency distribution (only averages of its last 1024 requests), so a p99 cannot be measured; set 0 or use a builtin router"},
		{"step p99 vs stable behind haproxy", haproxyRouter() + svc("image: a", "strategy:", "  canary:", "    steps:", "      - analysis: {max_p99_vs_stable: 2}"),
			"cutover.yaml:13: services.web.strategy.canary.steps[0].analysis.max_p99_vs_stable: router main is type haproxy, which keeps no latency distribution (only averages of its last 1024 requests), so a p99 cannot be measured; set 0 or use a builtin router"},
		{"source type", svc("image: a", "source: {type: gcr}"),
			`cutover.yaml:4: services.web.source.type: want docker or ecr, got "gcr"`},
		{"ecr field on docker", svc("image: a", "source:", "  region: us-east-1"),
			"cutover.yaml:5: services.web.source.region: only used with type ecr"},
		{"ecr registry id", svc("image: a", "source: {type: ecr, registry_id: 1234}"),
			`cutover.yaml:4: services.web.source.registry_id: want a 12-digit AWS account ID, got "1234"`},
		{"ecr endpoint", svc("image: a", "source: {type: ecr, endpoint: localhost:5000}"),
			`cutover.yaml:4: services.web.source.endpoint: want an http(s) URL, got "localhost:5000"`},
		{"ecr needs a repository", svc("source: {type: ecr}"),
			"cutover.yaml:3: services.web.source.repository: required for type ecr (or set image)"},
		{"tag filter", svc("image: a", "source: {tag_filter: \"v(\"}"),
			"cutover.yaml:4: services.web.source.tag_filter: not a valid regular expression: error parsing regexp: missing closing ): `v(`"},
		{"platform", svc("image: a", "platform: kubernetes"),
			`cutover.yaml:4: services.web.platform: want docker or swarm, got "kubernetes"`},
		{"swarm keys on docker", svc("image: a", "swarm:", "  constraints: [node.role==worker]"),
			"cutover.yaml:4: services.web.swarm: only used with platform: swarm"},
		{"constraint", svc("image: a", "platform: swarm", "swarm:", "  constraints:", "    - node.role==worker", "    - zone=a"),
			`cutover.yaml:8: services.web.swarm.constraints[1]: want a constraint such as node.labels.zone==a or node.role!=manager, got "zone=a"`},
		{"memory", svc("image: a", "platform: swarm", "swarm: {limits: {memory: lots}}"),
			`cutover.yaml:5: services.web.swarm.limits.memory: want bytes with an optional unit such as 512m or 1g, got "lots"`},
		{"negative cpus", svc("image: a", "platform: swarm", "swarm:", "  reservations:", "    cpus: -1"),
			"cutover.yaml:7: services.web.swarm.reservations.cpus: must not be negative, got -1"},
		{"reservation above limit", svc("image: a", "platform: swarm", "swarm:", "  limits: {memory: 256m}", "  reservations: {memory: 1g}"),
			"cutover.yaml:7: services.web.swarm.reservations.memory: 1g is above the limit of 256m: a task may never use what its node must keep for it"},
		{"env name", svc("image: a", "env: {\"A=B\": x}"),
			"cutover.yaml:4: services.web.env.A=B: environment variable names cannot be empty or contain '='"},
		{"prometheus url", "prometheus: {url: localhost:9090}\n" + svc("image: a"),
			`cutover.yaml:1: prometheus.url: want an http(s) URL, got "localhost:9090"`},
		{"queries without prometheus", svc("image: a", "analysis:", "  queries:", "    - {name: errors, query: up, max: 1}"),
			"cutover.yaml:5: services.web.analysis.queries: queries need a Prometheus server: set prometheus.url at the top level"},
		{"query template", prom + svc("image: a", "analysis:", "  queries:", "    - name: errors", "      query: 'rate(x{version=\"{{.Canry}}\"}[1m])'", "      max: 1"),
			`cutover.yaml:8: services.web.analysis.queries[0].query: query template: template: query:1:18: executing "query" at <.Canry>: can't evaluate field Canry in type engine.QueryVars (the template may use {{.Service}}, {{.Canary}}, {{.Stable}} and {{.Window}})`},
		{"query without a range", prom + svc("image: a", "analysis:", "  queries:", "    - {name: errors, query: up}"),
			"cutover.yaml:7: services.web.analysis.queries[0]: needs min, max or both: the range each value must lie in"},
		{"query min above max", prom + svc("image: a", "analysis:", "  queries:", "    - {name: ok, query: up, min: 2, max: 1}"),
			"cutover.yaml:7: services.web.analysis.queries[0].min: 2 is above max 1"},
		{"query names twice", prom + svc("image: a", "analysis:", "  queries:", "    - {name: e, query: up, max: 1}", "    - {name: e, query: up, max: 2}"),
			`cutover.yaml:8: services.web.analysis.queries[1].name: "e" is already the name of services.web.analysis.queries[0]`},
		{"step query", prom + svc("image: a", "strategy:", "  canary:", "    steps:", "      - analysis:", "          queries: [{name: e, query: '', max: 1}]"),
			"cutover.yaml:9: services.web.strategy.canary.steps[0].analysis.queries[0].query: the query is empty (the template may use {{.Service}}, {{.Canary}}, {{.Stable}} and {{.Window}})"},
		{"notification url", "notifications:\n  - url: hooks.example.com\n" + svc("image: a"),
			`cutover.yaml:2: notifications[0].url: want an http(s) URL, got "hooks.example.com"`},
		{"notification template", "notifications:\n  - url: http://x\n    template: '{\"text\": {{.Summary}}}'\n" + svc("image: a"),
			`cutover.yaml:3: notifications[0].template: renders "{\"text\": web 1.0.0 → 1.1.0: gate-passed: analysis passed: error rate 0.2% ≤ 1%, 1,234 requests}", which is not JSON`},
		{"webhook url", svc("image: a", "strategy:", "  canary:", "    steps:", "      - webhook: {url: /confirm}"),
			`cutover.yaml:7: services.web.strategy.canary.steps[0].webhook.url: want an http(s) URL, got "/confirm"`},
		{"webhook and approval", svc("image: a", "strategy:", "  canary:", "    steps:", "      - {approval: true, webhook: {url: \"http://x\"}}"),
			"cutover.yaml:7: services.web.strategy.canary.steps[0]: a step has at most one gate, got approval and webhook; split it into steps"},
		{"syntax", "services:\n  web: [a\n",
			"cutover.yaml:2: invalid YAML: sequence end token ']' not found"},
		{"duplicate key", svc("image: a", "image: b"),
			"cutover.yaml:4: invalid YAML: mapping key \"image\" already defined at [3:5]"},
		{"two documents", svc("image: a") + "---\nservices: {}\n",
			"cutover.yaml:5: want one YAML document, found 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseErrors(t, tc.src)
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("errors:\n  %s\nwant:\n  %s\nfile:\n%s", strings.Join(got, "\n  "), tc.want, tc.src)
			}
		})
	}
}

func TestUnknownKeyDeepInsideReportsItsOwnLine(t *testing.T) {
	got := parseErrors(t, svc(
		"image: a", // 3
		"strategy:",
		"  canary:", // 5
		"    steps:",
		"      - weight: 10",
		"        analysis:",
		"          window: 1m",
		"          max_p999: 1s", // 10
	))
	want := `cutover.yaml:10: services.web.strategy.canary.steps[0].analysis.max_p999: unknown key; did you mean "max_p99"?`
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestUnknownKeyFarFromAnyKnownOneListsTheAllowedKeys(t *testing.T) {
	got := parseErrors(t, svc("image: a", "on_failure: {whenever: pause}"))
	want := "cutover.yaml:4: services.web.on_failure.whenever: unknown key; want one of: before_traffic, after_traffic"
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTopLevelXKeysAreIgnoredButOtherUnknownKeysAreNot(t *testing.T) {
	got := parseErrors(t, "x-anchors: {a: 1}\nservice:\n  web: {image: a}\n")
	want := []string{
		`cutover.yaml:1: services: at least one service is required`,
		`cutover.yaml:2: service: unknown key; did you mean "services"?`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWrongTypesSayWhatWasWantedAndWhatWasFound(t *testing.T) {
	got := parseErrors(t, svc(
		`replicas: "four"`, // 3
		"image: [a]",
		"port: 80.5",
		"health: /healthz", // 6
		"env: [A]",
		"command: run",
		"strategy:",
		"  bluegreen: {approval: yes}", // 10
		"  canary: {steps: [5]}",
		"analysis: {max_error_rate: low}",
	))
	want := []string{
		`cutover.yaml:3: services.web.replicas: want an integer, got string "four"`,
		`cutover.yaml:4: services.web.image: want a string, got a list`,
		`cutover.yaml:5: services.web.port: want an integer, got number 80.5`,
		`cutover.yaml:6: services.web.health: want a mapping, got string "/healthz"`,
		`cutover.yaml:7: services.web.env: want a mapping, got a list`,
		`cutover.yaml:8: services.web.command: want a list, got string "run"`,
		`cutover.yaml:10: services.web.strategy.bluegreen.approval: want true or false, got string "yes"`,
		`cutover.yaml:11: services.web.strategy.canary.steps[0]: want a mapping, got integer 5`,
		`cutover.yaml:12: services.web.analysis.max_error_rate: want a number, got string "low"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAllErrorsAreReportedTogetherSortedByLine(t *testing.T) {
	src := `services:
  web:
    image: a
    strategy:
      type: canary
      canary:
        instances: 2
        steps:
          - weight: 120
  api:
    image: b
    replicas: 0
    port: http
routers:
  main:
    listen: nowhere
version: 3
`
	got := parseErrors(t, src)
	want := []string{
		`cutover.yaml:2: services.web.router: router "main" already serves service "api"; a router serves one service: add a router for web`,
		"cutover.yaml:7: services.web.strategy.canary.instances: must be 1..replicas (1), got 2",
		"cutover.yaml:9: services.web.strategy.canary.steps[0].weight: must be 0..100, got 120",
		"cutover.yaml:12: services.api.replicas: must be at least 1, got 0",
		`cutover.yaml:13: services.api.port: want an integer, got string "http"`,
		`cutover.yaml:16: routers.main.listen: want host:port, got "nowhere"`,
		"cutover.yaml:17: version: this cutover reads version 1, got 3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorsCarryColumnAndPathForTools(t *testing.T) {
	_, err := Parse("deploy/cutover.yaml", []byte(svc("image: a", "replicas: 0")))
	es, ok := err.(Errors)
	if !ok || len(es) != 1 {
		t.Fatalf("err = %#v, want one config.Errors entry", err)
	}
	want := Error{File: "deploy/cutover.yaml", Line: 4, Col: 5, Path: "services.web.replicas", Msg: "must be at least 1, got 0"}
	if es[0] != want {
		t.Errorf("got %+v, want %+v", es[0], want)
	}
}

func TestAValueThatFailedToDecodeIsNotReportedAgainByValidation(t *testing.T) {
	got := parseErrors(t, svc("image: a", "replicas: lots", "strategy: {rolling: {batch_size: 3}}"))
	want := []string{
		`cutover.yaml:4: services.web.replicas: want an integer, got string "lots"`,
		`cutover.yaml:5: services.web.strategy.rolling.batch_size: must be 1..replicas (1), got 3`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWeightsMayRepeatAndNeedNotReach100(t *testing.T) {
	c := mustParse(t, svc("image: a", "strategy: {canary: {steps: [{weight: 0}, {weight: 20, approval: true}, {weight: 20, pause: 1m}, {weight: 60}]}}"))
	if n := len(c.Services["web"].Strategy.Canary.Steps); n != 4 {
		t.Errorf("steps = %d, want 4", n)
	}
}

func TestABadServiceAnalysisIsReportedOnceNotInEveryStepThatInheritsIt(t *testing.T) {
	got := parseErrors(t, svc(
		"image: a",
		"analysis: {max_error_rate: 3}", // 4
		"strategy:",
		"  canary:",
		"    steps:",
		"      - analysis: {}",
		"      - analysis: {window: 0s}", // 9
	))
	want := []string{
		"cutover.yaml:4: services.web.analysis.max_error_rate: must be 0..1 (a fraction: 0.01 is 1%), got 3",
		"cutover.yaml:9: services.web.strategy.canary.steps[1].analysis.window: must be more than 0, got 0s",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

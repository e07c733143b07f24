package router_test

// The router benchmark. THE command is
//
//	go test -run '^$' -bench . -benchtime 1x ./engine/router/
//
// BenchmarkProxyThroughput puts the same backend behind each proxy in turn and
// drives it with wrk in several scenarios (benchScenarios: a 1-byte GET, a
// POST with a body, a weighted two-backend table, one connection),
// alternating one-second runs of every leg with runs of the backend reached
// directly and reporting medians; BenchmarkApplyToFirstRequest measures how
// soon after Apply returns the router routes by the new table;
// BenchmarkRouterMemory reads the router's resident memory under a fixed
// request rate. Figures are reported with b.ReportMetric and as tables on
// stdout; there is no ns/op.
//
// Each leg does its work once per call whatever b.N is: wrk runs for fixed
// durations (a warm-up, then benchRounds slices of benchSlice on the leg,
// alternating with as many on the direct backend), and Go's benchmark driver
// stops growing b.N once one call took longer than -benchtime, so the legs run
// once each with the default -benchtime too; -benchtime 1x just says so. The
// whole run takes about three and a half minutes.
//
// Everything runs as separate processes on loopback on free ports: the
// backends (./bench/backend), the router (the real ./cmd/cutover binary),
// HAProxy, nginx, the httputil.ReverseProxy reference (./bench/refproxy) and
// wrk (and hey). Each is killed, with its process group, in b.Cleanup. Legs whose tool
// is not installed are skipped.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/router"
)

const (
	benchWrkThreads     = 2
	benchWrkConns       = 32
	benchRounds         = 5
	benchSlice          = 1 * time.Second
	benchWarmup         = 1 * time.Second
	benchApplyRounds    = 1000
	benchApplyLoaders   = 4
	benchApplyDeadline  = 3 * time.Second
	benchStartupTimeout = 15 * time.Second
	benchPostBody       = 1024 // bytes in the POST scenario's body
	benchMemoryRate     = 5000 // requests/s of the memory benchmark
	benchMemoryWorkers  = 20
	benchMemoryDuration = 10 * time.Second
)

// benchLoad is what one wrk run measured.
type benchLoad struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int64
	Non2xx   int64
	SockErrs int64
}

// benchEnv holds what every leg shares: a temp dir, built binaries and the
// backends every proxy forwards to.
type benchEnv struct {
	dir      string
	bins     map[string]string // name -> built binary
	backendA string            // host:port answering "a"
	backendB string            // host:port answering "b"
}

// benchSetup starts backend a, and backend b when withB.
func benchSetup(b *testing.B, withB bool) *benchEnv {
	b.Helper()
	env := &benchEnv{dir: b.TempDir(), bins: map[string]string{}}
	env.backendA = benchStartListener(b, env.dir, "backend-a", env.bin(b, "backend"), nil, "-id", "a")
	if withB {
		env.backendB = benchStartListener(b, env.dir, "backend-b", env.bin(b, "backend"), nil, "-id", "b")
	}
	benchWaitBody(b, "http://"+env.backendA+"/", "a")
	return env
}

// bin builds a program on first use, so that a leg whose program does not
// build fails alone.
func (env *benchEnv) bin(b *testing.B, name string) string {
	b.Helper()
	if p, ok := env.bins[name]; ok {
		return p
	}
	p := benchBuild(b, env.dir, name)
	env.bins[name] = p
	return p
}

// benchBuild compiles one of the benchmark's programs into dir and returns the
// binary's path. name is "backend", "refproxy" or "cutover".
func benchBuild(b *testing.B, dir, name string) string {
	b.Helper()
	pkg := map[string]string{
		"backend":  "./bench/backend",
		"refproxy": "./bench/refproxy",
		"cutover":  "../../cmd/cutover",
	}[name]
	if pkg == "" {
		b.Fatalf("build %s: unknown program", name)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("build %s: go toolchain not on PATH: %v", name, err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", name, err, msg)
	}
	return out
}

// benchStart starts a long-running process in its own process group and
// registers a cleanup that ends the whole group, first gently, then with
// SIGKILL. Its stderr and stdout go to dir/name.log unless
// the caller takes stdout. Pdeathsig covers a test binary that dies before
// its cleanups run.
func benchStart(b *testing.B, dir, name, path string, env []string, stdout io.Writer, args ...string) *exec.Cmd {
	b.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		defer logf.Close()
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		// The leader may be gone while workers linger; the group kill gets them.
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		if b.Failed() {
			if log, err := os.ReadFile(logf.Name()); err == nil && len(log) > 0 {
				b.Logf("%s log:\n%s", name, benchTail(log, 2000))
			}
		}
	})
	return cmd
}

// benchStartListener starts one of our Go programs that prints
// "listening ADDR" and returns ADDR.
func benchStartListener(b *testing.B, dir, name, path string, env []string, args ...string) string {
	b.Helper()
	pr, pw := io.Pipe()
	benchStart(b, dir, name, path, env, pw, args...)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
				break
			}
		}
		io.Copy(io.Discard, pr) // keep the pipe drained for the process's life
	}()
	b.Cleanup(func() { pw.Close() })
	select {
	case a := <-addr:
		return a
	case <-time.After(benchStartupTimeout):
		b.Fatalf("start %s: no listening address after %s", name, benchStartupTimeout)
		return ""
	}
}

// benchFreeAddr returns a loopback address that was free a moment ago, for
// programs that cannot listen on :0 and report the port back.
func benchFreeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// benchWaitBody polls url until it answers 200 with one of the bodies want.
func benchWaitBody(b *testing.B, url string, want ...string) {
	b.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(benchStartupTimeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && slices.Contains(want, string(body)) {
				return
			}
			last = fmt.Sprintf("%s %q", resp.Status, body)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not control
	}
	b.Fatalf("wait for %s to answer %q: last answer %s", url, want, last)
}

// benchWrk runs wrk with sc's connections and request against url for d and
// parses its report.
func benchWrk(b *testing.B, env *benchEnv, sc benchScenario, url string, d time.Duration) benchLoad {
	b.Helper()
	args := []string{"-t" + strconv.Itoa(sc.threads), "-c" + strconv.Itoa(sc.conns),
		"-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency"}
	if sc.post {
		args = append(args, "-s", env.postScript(b))
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	load, err := benchParseWrk(string(out))
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	return load
}

// postScript writes, once, the wrk script that POSTs benchPostBody bytes.
func (env *benchEnv) postScript(b *testing.B) string {
	b.Helper()
	path := filepath.Join(env.dir, "post.lua")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	script := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", %d)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n", benchPostBody)
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		b.Fatalf("write wrk POST script: %v", err)
	}
	return path
}

var (
	benchWrkRPS     = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	benchWrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	benchWrkTotal   = regexp.MustCompile(`(?m)^\s+(\d+) requests in`)
	benchWrkNon2xx  = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses:\s+(\d+)`)
	benchWrkSockErr = regexp.MustCompile(`(?m)^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// benchParseWrk reads Requests/sec, the 50% and 99% lines of the latency
// distribution, and the error lines from wrk's report.
func benchParseWrk(out string) (benchLoad, error) {
	var l benchLoad
	m := benchWrkRPS.FindStringSubmatch(out)
	if m == nil {
		return l, errors.New("no Requests/sec line")
	}
	l.RPS, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range benchWrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			l.P50 = d
		} else {
			l.P99 = d
		}
	}
	if l.P50 == 0 || l.P99 == 0 {
		return l, errors.New("no 50%/99% latency distribution lines (was --latency passed?)")
	}
	if m := benchWrkTotal.FindStringSubmatch(out); m != nil {
		l.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := benchWrkNon2xx.FindStringSubmatch(out); m != nil {
		l.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := benchWrkSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			l.SockErrs += n
		}
	}
	return l, nil
}

// benchScenario is one kind of load: every leg of it is measured against the
// backend reached directly with the same load.
type benchScenario struct {
	name     string
	conns    int
	threads  int
	post     bool // POST a benchPostBody-byte body instead of a GET
	weighted bool // two backends, weights 3 and 1 (the direct baseline is backend a)
	legs     []string
}

// benchScenarios are the loads of BenchmarkProxyThroughput: the 1-byte GET
// over 32 keep-alive connections, the same with a POST body, the same over a
// weighted two-backend table, and one connection (the latency a proxy adds
// when it is not loaded).
var benchScenarios = []benchScenario{
	{name: "get", conns: benchWrkConns, threads: benchWrkThreads, legs: []string{"router", "haproxy", "nginx", "reverseproxy_tuned", "reverseproxy_default"}},
	{name: "post_1KiB", conns: benchWrkConns, threads: benchWrkThreads, post: true, legs: []string{"router", "haproxy", "nginx"}},
	{name: "weighted_3to1", conns: benchWrkConns, threads: benchWrkThreads, weighted: true, legs: []string{"router", "haproxy", "nginx"}},
	{name: "one_conn", conns: 1, threads: 1, legs: []string{"router", "haproxy", "nginx"}},
}

// benchUpstream is one backend of a leg's configuration.
type benchUpstream struct {
	id, addr string
	weight   int
}

// upstreams are the backends sc routes to.
func (env *benchEnv) upstreams(sc benchScenario) []benchUpstream {
	if sc.weighted {
		return []benchUpstream{{"a", env.backendA, 3}, {"b", env.backendB, 1}}
	}
	return []benchUpstream{{"a", env.backendA, 1}}
}

// benchLegs start each kind of proxy in front of ups and return the URL
// that wrk should load, or skip.
var benchLegs = map[string]func(b *testing.B, env *benchEnv, ups []benchUpstream) string{
	"router": func(b *testing.B, env *benchEnv, ups []benchUpstream) string {
		proxyAddr, client, _ := benchStartRouter(b, env)
		table := engine.RouteTable{Epoch: 1}
		for _, u := range ups {
			table.Backends = append(table.Backends, engine.Backend{ID: u.id, Addr: u.addr, Version: "v-" + u.id, Weight: u.weight})
		}
		if err := client.Apply(context.Background(), table); err != nil {
			b.Fatalf("apply the benchmark's table: %v", err)
		}
		return "http://" + proxyAddr + "/"
	},
	"haproxy": benchStartHAProxy,
	"nginx":   benchStartNginx,
	"reverseproxy_tuned": func(b *testing.B, env *benchEnv, ups []benchUpstream) string {
		return "http://" + benchStartListener(b, env.dir, "refproxy-tuned", env.bin(b, "refproxy"), nil,
			"-backend", "http://"+ups[0].addr, "-tuned=true") + "/"
	},
	"reverseproxy_default": func(b *testing.B, env *benchEnv, ups []benchUpstream) string {
		return "http://" + benchStartListener(b, env.dir, "refproxy-default", env.bin(b, "refproxy"), nil,
			"-backend", "http://"+ups[0].addr, "-tuned=false") + "/"
	},
}

// benchRow is one line of the summary printed at the end.
type benchRow struct {
	scenario string
	name     string
	load     benchLoad
	direct   benchLoad // the direct runs paired with this leg
	x        float64   // median of the per-round ratios leg rps / direct rps
	skipped  bool
}

// BenchmarkProxyThroughput reports, per scenario and leg, wrk's requests/sec
// and p50/p99 latency through that proxy (medians of benchRounds runs), the
// same figures of the backend reached directly in the runs alternating with
// them, the median ratio of the two rps (x_direct), and the latency the
// proxy adds over those direct runs (added_p50_us, added_p99_us).
func BenchmarkProxyThroughput(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		demotest.Missing(b, "wrk (apt-get install wrk) for a load generator: %v", err)
	}
	env := benchSetup(b, true)
	loadBefore := benchLoadAvg()

	var rows []benchRow
	// addRow keeps one row per leg: with a -benchtime longer than a leg, the
	// driver calls a leg again and its later figures replace the earlier.
	addRow := func(r benchRow) {
		for i := range rows {
			if rows[i].scenario == r.scenario && rows[i].name == r.name {
				rows[i] = r
				return
			}
		}
		rows = append(rows, r)
	}
	directURL := "http://" + env.backendA + "/"
	for _, sc := range benchScenarios {
		b.Run(sc.name, func(b *testing.B) {
			for _, name := range sc.legs {
				b.Run(name, func(b *testing.B) {
					defer func() {
						if b.Skipped() {
							addRow(benchRow{scenario: sc.name, name: name, skipped: true})
						}
					}()
					url := benchLegs[name](b, env, env.upstreams(sc))
					benchWaitBody(b, url, "a", "b")
					load, d, x := benchPaired(b, env, sc, url, directURL)
					benchReport(b, load, d, x)
					addRow(benchRow{scenario: sc.name, name: name, load: load, direct: d, x: x})
				})
			}
		})
	}
	if len(rows) > 0 {
		// Printed rather than logged: a parent benchmark's log is shown only
		// with -v, and this summary is the point of the run.
		fmt.Print(benchSummary(rows))
		fmt.Printf("machine: %d CPUs; load average (1m 5m 15m) %s before, %s after: other work on the machine skews every leg\n",
			runtime.NumCPU(), loadBefore, benchLoadAvg())
	}
}

// benchPaired warms url up, then runs wrk on url and on directURL in turn,
// benchRounds slices of benchSlice each, and returns the median figures of
// each side and the median of the per-round rps ratios. Alternating short
// slices pairs every proxy second with a direct second taken under the same
// load from the other work on a shared machine, which drifts by tens of
// percent within a minute.
func benchPaired(b *testing.B, env *benchEnv, sc benchScenario, url, directURL string) (leg, direct benchLoad, x float64) {
	b.Helper()
	benchWrk(b, env, sc, url, benchWarmup) // fill connection pools, warm caches
	var legs, directs []benchLoad
	var ratios []float64
	for range benchRounds {
		l := benchWrk(b, env, sc, url, benchSlice)
		d := benchWrk(b, env, sc, directURL, benchSlice)
		legs, directs = append(legs, l), append(directs, d)
		ratios = append(ratios, l.RPS/d.RPS)
	}
	leg, direct = benchMedian(legs), benchMedian(directs)
	for _, l := range []benchLoad{leg, direct} {
		if l.Non2xx > 0 || l.SockErrs > 0 {
			b.Errorf("%s: %d non-2xx responses and %d socket errors in %d requests",
				url, l.Non2xx, l.SockErrs, l.Requests)
		}
	}
	sort.Float64s(ratios)
	return leg, direct, ratios[len(ratios)/2]
}

// benchMedian takes the median rps and latencies of several runs and sums
// their counts.
func benchMedian(runs []benchLoad) benchLoad {
	var m benchLoad
	rps := make([]float64, len(runs))
	p50 := make([]time.Duration, len(runs))
	p99 := make([]time.Duration, len(runs))
	for i, r := range runs {
		rps[i], p50[i], p99[i] = r.RPS, r.P50, r.P99
		m.Requests += r.Requests
		m.Non2xx += r.Non2xx
		m.SockErrs += r.SockErrs
	}
	sort.Float64s(rps)
	sort.Slice(p50, func(i, j int) bool { return p50[i] < p50[j] })
	sort.Slice(p99, func(i, j int) bool { return p99[i] < p99[j] })
	m.RPS, m.P50, m.P99 = rps[len(rps)/2], p50[len(p50)/2], p99[len(p99)/2]
	return m
}

// benchReport attaches one leg's figures to the benchmark result.
func benchReport(b *testing.B, load, direct benchLoad, x float64) {
	b.ReportMetric(0, "ns/op") // wall time per op means nothing: wrk ran for a fixed time
	b.ReportMetric(load.RPS, "rps")
	b.ReportMetric(direct.RPS, "direct_rps")
	b.ReportMetric(float64(load.P50.Microseconds()), "p50_us")
	b.ReportMetric(float64(load.P99.Microseconds()), "p99_us")
	b.ReportMetric(x, "x_direct")
	b.ReportMetric(float64((load.P50 - direct.P50).Microseconds()), "added_p50_us")
	b.ReportMetric(float64((load.P99 - direct.P99).Microseconds()), "added_p99_us")
}

// benchSummary renders, per scenario, a one-line verdict and a table of
// every leg, each compared with the direct runs paired with it.
func benchSummary(rows []benchRow) string {
	var out strings.Builder
	for _, sc := range benchScenarios {
		var line []string
		var tab strings.Builder
		fmt.Fprintf(&tab, "%-22s %9s %10s %9s %9s %9s %11s %11s\n", "leg", "rps", "direct rps", "x direct", "p50", "p99", "added p50", "added p99")
		for _, r := range rows {
			if r.scenario != sc.name {
				continue
			}
			if r.skipped {
				line = append(line, r.name+" skipped")
				fmt.Fprintf(&tab, "%-22s skipped (run with -v for the reason)\n", r.name)
				continue
			}
			line = append(line, fmt.Sprintf("%s %.2f×", r.name, r.x))
			fmt.Fprintf(&tab, "%-22s %9.0f %10.0f %8.2f× %9s %9s %11s %11s\n", r.name, r.load.RPS, r.direct.RPS, r.x,
				benchDur(r.load.P50), benchDur(r.load.P99), benchDur(r.load.P50-r.direct.P50), benchDur(r.load.P99-r.direct.P99))
		}
		if len(line) == 0 {
			continue
		}
		fmt.Fprintf(&out, "\n%s (wrk -t%d -c%d): %s\n%s", sc.name, sc.threads, sc.conns, strings.Join(line, ", "), tab.String())
	}
	return out.String()
}

// benchDur prints a duration in µs or ms with three significant figures.
func benchDur(d time.Duration) string {
	if d < time.Millisecond && d > -time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// benchStartHAProxy starts HAProxy in the foreground with two threads in
// front of ups, keep-alive on both sides.
func benchStartHAProxy(b *testing.B, env *benchEnv, ups []benchUpstream) string {
	b.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		demotest.Missing(b, "haproxy (apt-get install haproxy) for the HAProxy leg: %v", err)
	}
	addr := benchFreeAddr(b)
	var servers strings.Builder
	for _, u := range ups {
		fmt.Fprintf(&servers, "\tserver %s %s weight %d\n", u.id, u.addr, u.weight)
	}
	cfg := fmt.Sprintf(`global
	maxconn 4096
	nbthread 2

defaults
	mode http
	option http-keep-alive
	timeout connect 5s
	timeout client 30s
	timeout server 30s

frontend fe
	bind %s
	default_backend be

backend be
	balance roundrobin
	http-reuse always
%s`, addr, servers.String())
	path := filepath.Join(env.dir, "haproxy-"+strings.ReplaceAll(addr, ":", "-")+".cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatalf("write haproxy config: %v", err)
	}
	benchStart(b, env.dir, strings.TrimSuffix(filepath.Base(path), ".cfg"), "haproxy", nil, nil, "-db", "-f", path)
	return "http://" + addr + "/"
}

// benchStartNginx starts nginx in the foreground in front of ups with a
// keepalive upstream and two workers, as HAProxy has two threads. The master
// and its workers share the process group benchStart kills.
func benchStartNginx(b *testing.B, env *benchEnv, ups []benchUpstream) string {
	b.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		demotest.Missing(b, "nginx (apt-get install nginx-light) for the nginx leg: %v", err)
	}
	addr := benchFreeAddr(b)
	prefix, err := os.MkdirTemp(env.dir, "nginx-")
	if err != nil {
		b.Fatalf("make nginx prefix: %v", err)
	}
	var servers strings.Builder
	for _, u := range ups {
		fmt.Fprintf(&servers, "\t\tserver %s weight=%d;\n", u.addr, u.weight)
	}
	cfg := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream be {
%[3]s		keepalive 64;
	}
	server {
		listen %[2]s;
		location / {
			proxy_pass http://be;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
`, prefix, addr, servers.String())
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatalf("write nginx config: %v", err)
	}
	benchStart(b, env.dir, filepath.Base(prefix), "nginx", nil, nil, "-c", path, "-p", prefix, "-e", filepath.Join(prefix, "error.log"))
	return "http://" + addr + "/"
}

// BenchmarkRouterMemory loads the router at benchMemoryRate requests/s (hey,
// rate-limited per worker) and reports its resident memory: the high-water
// mark and the resident set at the end, read from /proc.
func BenchmarkRouterMemory(b *testing.B) {
	if _, err := exec.LookPath("hey"); err != nil {
		b.Skip("hey not installed (apt-get install hey): no rate-limited load generator")
	}
	env := benchSetup(b, false)
	proxyAddr, client, cmd := benchStartRouter(b, env)
	table := engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "a", Addr: env.backendA, Version: "v1", Weight: 1}}}
	if err := client.Apply(context.Background(), table); err != nil {
		b.Fatalf("apply the benchmark's table: %v", err)
	}
	url := "http://" + proxyAddr + "/"
	benchWaitBody(b, url, "a")
	out, err := exec.Command("hey", "-z", benchMemoryDuration.String(), "-c", strconv.Itoa(benchMemoryWorkers),
		"-q", strconv.Itoa(benchMemoryRate/benchMemoryWorkers), url).CombinedOutput()
	if err != nil {
		b.Fatalf("hey %s: %v\n%s", url, err, out)
	}
	rps := 0.0
	if m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out); m != nil {
		rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read the router's memory: %v", err)
	}
	kb := func(field string) float64 {
		m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(status)
		if m == nil {
			b.Fatalf("no %s in /proc status", field)
		}
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		return n
	}
	hwm, rss := kb("VmHWM"), kb("VmRSS")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rps, "rps")
	b.ReportMetric(hwm/1024, "peak_rss_MB")
	b.ReportMetric(rss/1024, "rss_MB")
	fmt.Printf("router memory at %.0f req/s (hey -c %d, %s): peak RSS %.1f MB, RSS at the end %.1f MB\n",
		rps, benchMemoryWorkers, benchMemoryDuration, hwm/1024, rss/1024)
}

// benchPercentile returns the q-quantile (0..1) of sorted durations.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// benchTail returns the last n bytes of a log.
func benchTail(p []byte, n int) []byte {
	if len(p) > n {
		return p[len(p)-n:]
	}
	return p
}

// benchStartRouter runs the real cutover binary as a router with an admin
// unix socket in the temp dir, waits until its admin API answers, and returns
// its public address and an admin client.
func benchStartRouter(b *testing.B, env *benchEnv) (string, *router.Client, *exec.Cmd) {
	b.Helper()
	dir, err := os.MkdirTemp(env.dir, "router-")
	if err != nil {
		b.Fatalf("make router dir: %v", err)
	}
	listen := benchFreeAddr(b)
	admin := "unix:" + filepath.Join(dir, "admin.sock")
	cmd := benchStart(b, env.dir, filepath.Base(dir), env.bin(b, "cutover"), nil, nil, "router",
		"--listen", listen, "--admin", admin, "--state", filepath.Join(dir, "state.json"), "--log-level", "warn")
	client, err := router.Dial(admin, "")
	if err != nil {
		b.Fatalf("dial router admin: %v", err)
	}
	b.Cleanup(func() { client.Close() })
	deadline := time.Now().Add(benchStartupTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Health(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("router admin %s did not answer within %s: %v", admin, benchStartupTimeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not control
	}
	return listen, client, cmd
}

// BenchmarkApplyToFirstRequest measures how long after Client.Apply returns
// the router sends traffic by the new table. A load loop keeps requests in
// flight through the router to backends a and b, which answer with their id;
// each round applies a table that moves 100% to the other backend and records
// the time from Apply returning to the first response from that backend to a
// request sent after Apply was called (0 when it came before Apply returned).
// It reports p50/p99/max of that delay, the load loop's mean request latency
// (the floor of that delay), and the p50 of Apply's own round trip (which
// includes the router's fsync of its state file).
func BenchmarkApplyToFirstRequest(b *testing.B) {
	env := benchSetup(b, true)
	proxyAddr, client, _ := benchStartRouter(b, env)
	ctx := context.Background()
	table := func(epoch uint64, to string) engine.RouteTable {
		wa, wb := 100, 0
		if to == "b" {
			wa, wb = 0, 100
		}
		return engine.RouteTable{Epoch: epoch, Backends: []engine.Backend{
			{ID: "a", Addr: env.backendA, Version: "v1", Weight: wa},
			{ID: "b", Addr: env.backendB, Version: "v2", Weight: wb},
		}}
	}
	epoch := uint64(1)
	if err := client.Apply(ctx, table(epoch, "a")); err != nil {
		b.Fatalf("apply the first table: %v", err)
	}
	url := "http://" + proxyAddr + "/"
	benchWaitBody(b, url, "a")

	var cur atomic.Pointer[benchSwitch]
	var load benchLoopStats
	stop := benchApplyLoad(url, benchApplyLoaders, &cur, &load)
	defer stop()

	var delays, applies []time.Duration
	early, missed := 0, 0
	b.ResetTimer()
	for round := range benchApplyRounds {
		to := "b"
		if round%2 == 1 {
			to = "a"
		}
		epoch++
		sw := &benchSwitch{want: to, since: time.Now(), seen: make(chan time.Time, 1)}
		cur.Store(sw)
		if err := client.Apply(ctx, table(epoch, to)); err != nil {
			b.Fatalf("round %d: apply table moving 100%% to %s: %v", round, to, err)
		}
		returned := time.Now()
		applies = append(applies, returned.Sub(sw.since))
		select {
		case got := <-sw.seen:
			d := got.Sub(returned)
			if d < 0 {
				early++
				d = 0
			}
			delays = append(delays, d)
		case <-time.After(benchApplyDeadline):
			missed++
		}
	}
	b.StopTimer()
	stop()

	if missed > 0 {
		b.Errorf("%d of %d rounds saw no response from the new backend within %s", missed, benchApplyRounds, benchApplyDeadline)
	}
	if n := load.errs.Load(); n > 0 {
		b.Errorf("load loop saw %d failed requests while tables were swapped", n)
	}
	if len(delays) == 0 {
		return
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	sort.Slice(applies, func(i, j int) bool { return applies[i] < applies[j] })
	p50, p99, worst := benchPercentile(delays, 0.50), benchPercentile(delays, 0.99), delays[len(delays)-1]
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(p50.Microseconds()), "p50_us")
	b.ReportMetric(float64(p99.Microseconds()), "p99_us")
	b.ReportMetric(float64(worst.Microseconds()), "max_us")
	b.ReportMetric(float64(benchPercentile(applies, 0.50).Microseconds()), "apply_p50_us")
	b.ReportMetric(float64(load.mean().Microseconds()), "req_mean_us")
	fmt.Printf("apply to first request on the new table, %d rounds (%d answered before Apply returned): p50 %s, p99 %s, max %s; "+
		"one request through the router takes %s on average under this load; Apply round trip p50 %s, p99 %s\n",
		len(delays), early, benchDur(p50), benchDur(p99), benchDur(worst), benchDur(load.mean()),
		benchDur(benchPercentile(applies, 0.50)), benchDur(benchPercentile(applies, 0.99)))
}

// benchSwitch is one table change the apply loop waits to see: the first
// response from want to a request sent after since.
type benchSwitch struct {
	want  string
	since time.Time
	seen  chan time.Time // receives the arrival time of that response, once
	once  sync.Once
}

// benchLoopStats counts the apply load loop's requests, their summed
// latency and its failures.
type benchLoopStats struct {
	requests, nanos, errs atomic.Int64
}

// mean is the loop's mean request latency: how long one request through the
// router takes, the floor of any apply-to-first-request figure.
func (st *benchLoopStats) mean() time.Duration {
	n := st.requests.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(st.nanos.Load() / n)
}

// benchApplyLoad keeps loaders requests in flight against url, reporting to
// the current benchSwitch. It returns a stop func that waits for the loaders;
// calling it twice is fine.
func benchApplyLoad(url string, loaders int, cur *atomic.Pointer[benchSwitch], st *benchLoopStats) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loaders, DisableCompression: true}}
	var wg sync.WaitGroup
	for range loaders {
		wg.Go(func() {
			buf := make([]byte, 64)
			for ctx.Err() == nil {
				sent := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						st.errs.Add(1)
					}
					continue
				}
				n, _ := io.ReadFull(resp.Body, buf)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got := time.Now()
				st.requests.Add(1)
				st.nanos.Add(int64(got.Sub(sent)))
				if resp.StatusCode != http.StatusOK {
					st.errs.Add(1)
					continue
				}
				if sw := cur.Load(); sw != nil && string(buf[:n]) == sw.want && !sent.Before(sw.since) {
					sw.once.Do(func() { sw.seen <- got })
				}
			}
		})
	}
	return func() { cancel(); wg.Wait(); client.CloseIdleConnections() }
}

// benchLoadAvg reads the 1, 5 and 15 minute load averages, or "?".
func benchLoadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

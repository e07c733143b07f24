package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"

	"github.com/cutover/cutover/engine"
)

// nameRE is what service and router names must look like: they end up in
// container names, labels and socket file names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

var registryIDRE = regexp.MustCompile(`^[0-9]{12}$`)

// validator checks a decoded, defaulted Config, reporting through the
// decoder so each problem carries the line its key was written on.
type validator struct {
	d          *decoder
	prometheus bool // a prometheus server is configured, for analysis queries
}

func (v validator) errorf(path, format string, args ...any) {
	v.d.errorf(v.d.at(path), path, format, args...)
}

func validate(d *decoder, c *Config) {
	v := validator{d: d, prometheus: c.Prometheus != nil}
	if c.Version != Version {
		v.errorf("version", "this cutover reads version %d, got %d", Version, c.Version)
	}
	if p := c.Prometheus; p != nil {
		v.httpURL("prometheus.url", p.URL)
		v.positive("prometheus.timeout", p.Timeout)
	}
	for i, n := range c.Notifications {
		np := indexPath("notifications", i)
		v.httpURL(np+".url", n.URL)
		v.positive(np+".timeout", n.Timeout)
		if n.Template != "" {
			if _, err := engine.ParseNoticeTemplate(n.Template); err != nil {
				v.errorf(np+".template", "%v", err)
			}
		}
	}
	for _, name := range c.RouterNames() {
		v.router("routers."+name, c.Routers[name])
	}
	// Every address a router listens on, public or admin, belongs to one
	// router: two sharing one would take each other's tables or traffic.
	addrs := map[string]string{}
	claim := func(path, addr, name string) {
		if other, ok := addrs[addr]; ok && other != name {
			v.errorf(path, "%s is already an address of router %q", addr, other)
			return
		}
		addrs[addr] = name
	}
	for _, name := range c.RouterNames() {
		r := c.Routers[name]
		claim("routers."+name+".listen", r.Listen, name)
		if r.Type == RouterHAProxy {
			// One HAProxy serves many backends; a backend, and the map
			// that holds its record, belong to one router.
			claim("routers."+name+".backend", "backend "+r.Backend+" at unix:"+c.Resolve(r.Socket), name)
			claim("routers."+name+".map", "map "+r.Map, name)
			continue
		}
		network, admin := c.AdminAddr(r)
		claim("routers."+name+".admin", network+":"+admin, name)
		if network == "tcp" {
			claim("routers."+name+".admin", admin, name)
		}
	}
	if len(c.Services) == 0 {
		v.errorf("services", "at least one service is required")
	}
	v.serve(c)
	// A router's table is one service's: a second service behind it would
	// have its backends replaced by the first's releases, and answer its clients.
	owner := map[string]string{}
	for _, name := range c.ServiceNames() {
		s := c.Services[name]
		v.service(c, "services."+name, s)
		if s.Router == "" || c.Routers[s.Router] == nil {
			continue
		}
		if other, ok := owner[s.Router]; ok {
			v.errorf("services."+name+".router", "router %q already serves service %q; a router serves one service: add a router for %s", s.Router, other, name)
			continue
		}
		owner[s.Router] = name
	}
}

func (v validator) name(path, name string) {
	if !nameRE.MatchString(name) {
		v.errorf(path, "name %q must be lowercase letters, digits and dashes, starting and ending with a letter or digit (at most 63)", name)
	}
}

// haproxyNameRE is what HAProxy accepts as a backend name.
var haproxyNameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

func (v validator) router(p string, r *Router) {
	v.name(p, r.Name)
	v.hostPort(p+".listen", r.Listen)
	switch r.Type {
	case RouterBuiltin:
		for key, val := range map[string]string{"socket": r.Socket, "backend": r.Backend, "map": r.Map} {
			if val != "" {
				v.errorf(p+"."+key, "only used with type haproxy")
			}
		}
	case RouterHAProxy:
		for key, val := range map[string]string{"admin": r.Admin, "token_file": r.TokenFile} {
			if val != "" {
				v.errorf(p+"."+key, "only used with type builtin: cutover drives HAProxy through its runtime API (socket)")
			}
		}
		if r.Socket == "" {
			v.errorf(p+".socket", "required for type haproxy: the path of HAProxy's runtime API socket (stats socket PATH level admin)")
		}
		switch {
		case r.Backend == "":
			v.errorf(p+".backend", "required for type haproxy: the HAProxy backend whose servers cutover sets")
		case !haproxyNameRE.MatchString(r.Backend):
			v.errorf(p+".backend", "%q is not an HAProxy backend name (letters, digits, '.', '-', '_', ':')", r.Backend)
		}
		if r.Map == "" {
			v.errorf(p+".map", "required for type haproxy: the map file cutover keeps its record in, as HAProxy's config loads it")
		}
		return
	default:
		v.errorf(p+".type", "want builtin or haproxy, got %q", r.Type)
		return
	}
	if sock, ok := strings.CutPrefix(r.Admin, "unix:"); ok {
		if sock == "" {
			v.errorf(p+".admin", "want unix:PATH or host:port, got %q", r.Admin)
		}
		return
	}
	v.hostPort(p+".admin", r.Admin)
	if r.TokenFile == "" {
		v.errorf(p+".token_file", "required when admin is a TCP address (%s): anyone who can reach it could move traffic", r.Admin)
	}
}

func (v validator) hostPort(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.errorf(path, "want host:port, got %q", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.errorf(path, "port must be 1..65535, got %q", port)
	}
}

func (v validator) service(c *Config, p string, s *Service) {
	v.name(p, s.Name)
	v.source(p, s)
	v.platform(p, s)
	if s.Replicas < 1 {
		v.errorf(p+".replicas", "must be at least 1, got %d", s.Replicas)
	}
	if s.Port < 1 || s.Port > 65535 {
		v.errorf(p+".port", "must be 1..65535, got %d", s.Port)
	}
	for _, k := range sortedKeys(s.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.errorf(p+".env."+k, "environment variable names cannot be empty or contain '='")
		}
	}
	switch {
	case s.Router == "" && len(c.Routers) == 0:
		v.errorf(p+".router", "required, and no routers are defined")
	case s.Router == "":
		v.errorf(p+".router", "required when there are %d routers (%s)", len(c.Routers), strings.Join(c.RouterNames(), ", "))
	case c.Routers[s.Router] == nil:
		v.errorf(p+".router", "unknown router %q (known: %s)", s.Router, strings.Join(c.RouterNames(), ", "))
	}

	h := p + ".health"
	if !strings.HasPrefix(s.Health.Path, "/") {
		v.errorf(h+".path", "must start with '/', got %q", s.Health.Path)
	}
	v.positive(h+".interval", s.Health.Interval)
	v.positive(h+".timeout", s.Health.Timeout)
	v.atLeast(h+".successes", s.Health.Successes, 1)
	v.atLeast(h+".failures", s.Health.Failures, 1)
	v.positive(p+".start_timeout", s.StartTimeout)

	v.action(p+".on_failure.before_traffic", s.OnFailure.BeforeTraffic)
	v.action(p+".on_failure.after_traffic", s.OnFailure.AfterTraffic)

	st := p + ".strategy"
	switch s.Strategy.Type {
	case StrategyRolling, StrategyBlueGreen, StrategyCanary:
	default:
		v.errorf(st+".type", "want rolling, bluegreen or canary, got %q", s.Strategy.Type)
	}
	if s.Replicas >= 1 { // limits relative to replicas mean nothing until replicas is right
		v.rolling(st+".rolling", s.Strategy.Rolling, s.Replicas)
	}
	if sp := s.Strategy.BlueGreen.SmokePath; sp != "" && !strings.HasPrefix(sp, "/") {
		v.errorf(st+".bluegreen.smoke_path", "must start with '/', got %q", sp)
	}
	v.canary(st+".canary", s.Strategy.Canary, max(s.Replicas, 1))
	v.analysis(p+".analysis", s.Analysis, false)
	if r := c.Routers[s.Router]; r != nil && r.Type == RouterHAProxy {
		v.measurable(p, s, r)
	}
}

// measurable refuses the analysis limits an HAProxy router cannot
// measure. HAProxy keeps no latency distribution: only averages of its
// last 1024 requests and maxima, from which no p99 can be told, so a p99
// limit would be judged on nothing. Each limit is reported where it was
// written: a step's inherited limits at the service.
func (v validator) measurable(p string, s *Service, r *Router) {
	why := fmt.Sprintf("router %s is type haproxy, which keeps no latency distribution (only averages of its last 1024 requests), so a p99 cannot be measured; set 0 or use a builtin router", r.Name)
	check := func(path string, a Analysis, ownOnly bool) {
		if a.MaxP99 > 0 && (!ownOnly || v.d.present(path+".max_p99")) {
			v.errorf(path+".max_p99", "%s", why)
		}
		if a.MaxP99VsStable > 0 && (!ownOnly || v.d.present(path+".max_p99_vs_stable")) {
			v.errorf(path+".max_p99_vs_stable", "%s", why)
		}
	}
	check(p+".analysis", s.Analysis, false)
	for i, st := range s.Strategy.Canary.Steps {
		if st.Analysis != nil {
			check(indexPath(p+".strategy.canary.steps", i)+".analysis", *st.Analysis, true)
		}
	}
}

func (v validator) source(p string, s *Service) {
	src := s.Source
	sp := p + ".source"
	switch src.Type {
	case SourceDocker:
		if s.Image == "" {
			v.errorf(p+".image", "required: the image repository to release")
		}
		for key, val := range map[string]string{
			"repository": src.Repository, "region": src.Region, "profile": src.Profile,
			"registry_id": src.RegistryID, "endpoint": src.Endpoint,
		} {
			if val != "" {
				v.errorf(sp+"."+key, "only used with type ecr")
			}
		}
	case SourceECR:
		if src.Repository == "" {
			v.errorf(sp+".repository", "required for type ecr (or set image)")
		}
		if src.RegistryID != "" && !registryIDRE.MatchString(src.RegistryID) {
			v.errorf(sp+".registry_id", "want a 12-digit AWS account ID, got %q", src.RegistryID)
		}
		if src.Endpoint != "" {
			v.httpURL(sp+".endpoint", src.Endpoint)
		}
	default:
		v.errorf(sp+".type", "want docker or ecr, got %q", src.Type)
	}
	if src.TagFilter != "" {
		if _, err := regexp.Compile(src.TagFilter); err != nil {
			v.errorf(sp+".tag_filter", "not a valid regular expression: %v", err)
		}
	}
	// The tag is what an operator picks at release time, so the repository
	// must not pin one. A colon before the last slash is a registry port.
	last := s.Image[strings.LastIndex(s.Image, "/")+1:]
	if strings.ContainsAny(last, ":@") {
		v.errorf(p+".image", "want a repository without a tag or digest (the tag is picked at release time), got %q", s.Image)
	}
}

// constraintRE is a Swarm placement constraint: an attribute, == or !=,
// and a value.
var constraintRE = regexp.MustCompile(`^\s*[A-Za-z0-9_.\-]+\s*(==|!=)\s*\S`)

func (v validator) platform(p string, s *Service) {
	switch s.Platform {
	case PlatformDocker:
		if v.d.present(p + ".swarm") {
			v.errorf(p+".swarm", "only used with platform: swarm")
		}
		return
	case PlatformSwarm:
	default:
		v.errorf(p+".platform", "want docker or swarm, got %q", s.Platform)
		return
	}
	if s.Swarm == nil {
		return
	}
	sp := p + ".swarm"
	for i, c := range s.Swarm.Constraints {
		if !constraintRE.MatchString(c) {
			v.errorf(indexPath(sp+".constraints", i), "want a constraint such as node.labels.zone==a or node.role!=manager, got %q", c)
		}
	}
	v.resources(sp+".limits", s.Swarm.Limits)
	v.resources(sp+".reservations", s.Swarm.Reservations)
	lim, res := s.Swarm.Limits, s.Swarm.Reservations
	if lim.CPUs > 0 && res.CPUs > lim.CPUs {
		v.errorf(sp+".reservations.cpus", "%g is above the limit of %g: a task may never use what its node must keep for it", res.CPUs, lim.CPUs)
	}
	if l, r := lim.MemoryBytes(), res.MemoryBytes(); l > 0 && r > l {
		v.errorf(sp+".reservations.memory", "%s is above the limit of %s: a task may never use what its node must keep for it", res.Memory, lim.Memory)
	}
}

func (v validator) resources(p string, r Resources) {
	if r.CPUs < 0 {
		v.errorf(p+".cpus", "must not be negative, got %g", r.CPUs)
	}
	if r.Memory == "" {
		return
	}
	if n, err := units.RAMInBytes(r.Memory); err != nil || n <= 0 {
		v.errorf(p+".memory", "want bytes with an optional unit such as 512m or 1g, got %q", r.Memory)
	}
}

func (v validator) rolling(p string, r Rolling, replicas int) {
	if r.BatchSize < 1 || r.BatchSize > replicas {
		v.errorf(p+".batch_size", "must be 1..replicas (%d), got %d", replicas, r.BatchSize)
	}
	v.atLeast(p+".max_surge", r.MaxSurge, 0)
	if r.MaxUnavailable < 0 || r.MaxUnavailable >= replicas {
		v.errorf(p+".max_unavailable", "must be 0..replicas-1 (%d), got %d", replicas-1, r.MaxUnavailable)
	}
	if r.MaxSurge >= 0 && r.MaxUnavailable >= 0 && r.BatchSize >= 1 && r.MaxSurge+r.MaxUnavailable < r.BatchSize {
		v.errorf(p, "max_surge + max_unavailable (%d + %d) must be at least batch_size (%d), or a batch cannot be replaced",
			r.MaxSurge, r.MaxUnavailable, r.BatchSize)
	}
}

func (v validator) canary(p string, c Canary, replicas int) {
	if c.Instances < 1 || c.Instances > replicas {
		v.errorf(p+".instances", "must be 1..replicas (%d), got %d", replicas, c.Instances)
	}
	if len(c.Steps) == 0 {
		v.errorf(p+".steps", "must have at least one step (leave steps out for the default ones)")
	}
	prev, prevAt := -1, ""
	for i, st := range c.Steps {
		sp := indexPath(p+".steps", i)
		var gates []string
		if st.Approval {
			gates = append(gates, "approval")
		}
		if st.Pause > 0 {
			gates = append(gates, "pause")
		}
		if st.Analysis != nil {
			gates = append(gates, "analysis")
			v.analysis(sp+".analysis", *st.Analysis, true)
		}
		if st.Webhook != nil {
			gates = append(gates, "webhook")
			v.httpURL(sp+".webhook.url", st.Webhook.URL)
			v.positive(sp+".webhook.timeout", st.Webhook.Timeout)
		}
		if len(gates) > 1 {
			v.errorf(sp, "a step has at most one gate, got %s; split it into steps", strings.Join(gates, " and "))
		}
		if st.Weight == nil {
			if len(gates) == 0 {
				v.errorf(sp, "a step needs a weight, a gate (approval, pause, analysis, webhook), or both")
			}
			continue
		}
		w := *st.Weight
		if w < 0 || w > 100 {
			v.errorf(sp+".weight", "must be 0..100, got %d", w)
			continue
		}
		if w < prev {
			v.errorf(sp+".weight", "must not be lower than the weight before it (%d at %s), got %d", prev, prevAt, w)
		}
		prev, prevAt = w, fmt.Sprintf("steps[%d]", i)
	}
}

// analysis checks analysis limits. For a step (ownOnly), only the limits the
// step wrote are checked: inherited ones were checked, and reported, at the
// service.
func (v validator) analysis(p string, a Analysis, ownOnly bool) {
	check := func(key string) bool { return !ownOnly || v.d.present(p+"."+key) }
	if check("window") {
		v.positive(p+".window", a.Window)
	}
	if check("max_error_rate") && (a.MaxErrorRate < 0 || a.MaxErrorRate > 1) {
		v.errorf(p+".max_error_rate", "must be 0..1 (a fraction: 0.01 is 1%%), got %g", a.MaxErrorRate)
	}
	if check("max_error_rate_vs_stable") {
		v.ratio(p+".max_error_rate_vs_stable", a.MaxErrorRateVsStable)
	}
	if check("max_p99_vs_stable") {
		v.ratio(p+".max_p99_vs_stable", a.MaxP99VsStable)
	}
	if check("min_requests") {
		v.atLeast(p+".min_requests", a.MinRequests, 0)
	}
	if check("queries") {
		v.queries(p+".queries", a.Queries)
	}
}

// queries checks an analysis's PromQL checks, their templates included.
func (v validator) queries(p string, qs []Query) {
	if len(qs) > 0 && !v.prometheus {
		v.errorf(p, "queries need a Prometheus server: set prometheus.url at the top level")
	}
	names := map[string]string{}
	for i, q := range qs {
		qp := indexPath(p, i)
		switch other, dup := names[q.Name]; {
		case q.Name == "":
			v.errorf(qp+".name", "required: the check's name in verdicts and the console")
		case dup:
			v.errorf(qp+".name", "%q is already the name of %s", q.Name, other)
		}
		names[q.Name] = qp
		if _, err := engine.RenderQuery(q.Query, engine.ExampleQueryVars); err != nil {
			v.errorf(qp+".query", "%v (the template may use {{.Service}}, {{.Canary}}, {{.Stable}} and {{.Window}})", err)
		}
		switch {
		case q.Min == nil && q.Max == nil:
			v.errorf(qp, "needs min, max or both: the range each value must lie in")
		case q.Min != nil && q.Max != nil && *q.Min > *q.Max:
			v.errorf(qp+".min", "%g is above max %g", *q.Min, *q.Max)
		}
		v.atLeast(qp+".failure_limit", q.FailureLimit, 0)
		v.atLeast(qp+".inconclusive_limit", q.InconclusiveLimit, 0)
		v.atLeast(qp+".consecutive_error_limit", q.ConsecutiveErrorLimit, 0)
	}
}

// httpURL checks an http(s) URL with a host.
func (v validator) httpURL(path, u string) {
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		v.errorf(path, "want an http(s) URL, got %q", u)
	}
}

// ratio checks a canary/stable limit: 0 turns it off, and below 1 would fail
// a canary that is exactly as good as stable.
func (v validator) ratio(path string, r float64) {
	if r != 0 && r < 1 {
		v.errorf(path, "must be 0 (off) or at least 1 (a ratio to stable), got %g", r)
	}
}

func (v validator) action(path string, a FailureAction) {
	if a != ActionRollback && a != ActionPause {
		v.errorf(path, "want rollback or pause, got %q", a)
	}
}

func (v validator) positive(path string, d time.Duration) {
	if d <= 0 {
		v.errorf(path, "must be more than 0, got %s", FormatDuration(d))
	}
}

func (v validator) atLeast(path string, n, lo int) {
	if n < lo {
		v.errorf(path, "must be at least %d, got %d", lo, n)
	}
}

package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// nameRE is what service and router names must look like: they end up in
// container names, labels and socket file names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

var registryIDRE = regexp.MustCompile(`^[0-9]{12}$`)

// validator checks a decoded, defaulted Config, reporting through the
// decoder so each problem carries the line its key was written on.
type validator struct{ d *decoder }

func (v validator) errorf(path, format string, args ...any) {
	v.d.errorf(v.d.at(path), path, format, args...)
}

func validate(d *decoder, c *Config) {
	v := validator{d}
	if c.Version != Version {
		v.errorf("version", "this cutover reads version %d, got %d", Version, c.Version)
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

func (v validator) router(p string, r *Router) {
	v.name(p, r.Name)
	v.hostPort(p+".listen", r.Listen)
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
			if u, err := url.Parse(src.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.errorf(sp+".endpoint", "want an http(s) URL, got %q", src.Endpoint)
			}
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
		if len(gates) > 1 {
			v.errorf(sp, "a step has at most one gate, got %s; split it into steps", strings.Join(gates, " and "))
		}
		if st.Weight == nil {
			if len(gates) == 0 {
				v.errorf(sp, "a step needs a weight, a gate (approval, pause, analysis), or both")
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

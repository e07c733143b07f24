package config

import (
	"path/filepath"
	"reflect"
	"time"

	"github.com/cutover/cutover/engine"
)

// Defaults, chosen so that a file naming only a service and its image gives a
// safe release: one replica, rolling one at a time, rollback on failure
// before traffic, pause after.
// Health and timing defaults are the engine's (engine.DefaultHealth,
// engine.DefaultStartTimeout...): one source for both.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultRouterName   = "main"
	DefaultPort         = 8080
	DefaultStartTimeout = engine.DefaultStartTimeout
	DefaultDrainTimeout = engine.DefaultDrainTimeout
	DefaultStopGrace    = engine.DefaultStopGrace
)

// DefaultSteps is the canary recipe used when a service gives none: a small
// slice of traffic, half, then everyone, with a pause to watch at each step.
func DefaultSteps() []Step {
	return []Step{
		{Weight: intPtr(10), Pause: 30 * time.Second},
		{Weight: intPtr(50), Pause: 30 * time.Second},
		{Weight: intPtr(100)},
	}
}

// DefaultAnalysis is the analysis every step inherits unless the service or
// the step says otherwise.
func DefaultAnalysis() Analysis {
	return Analysis{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50}
}

func intPtr(i int) *int { return &i }

func (r *Router) setDefaults() { r.Type, r.Listen = RouterBuiltin, DefaultListen }

// Defaults of the analysis queries and webhooks: the engine's where it
// has them.
const (
	DefaultPrometheusTimeout = 5 * time.Second
	DefaultNotifyTimeout     = 5 * time.Second
	DefaultWebhookTimeout    = engine.DefaultWebhookTimeout
)

func (p *Prometheus) setDefaults() { p.Timeout = DefaultPrometheusTimeout }

func (n *Notification) setDefaults() { n.Timeout = DefaultNotifyTimeout }

func (w *Webhook) setDefaults() { w.Timeout = DefaultWebhookTimeout }

func (q *Query) setDefaults() {
	q.Interval = engine.DefaultQueryInterval
	q.ConsecutiveErrorLimit = engine.DefaultConsecutiveErrorLimit
}

func (s *Service) setDefaults() {
	*s = Service{
		Source:   Source{Type: SourceDocker},
		Platform: PlatformDocker,
		Replicas: 1,
		Port:     DefaultPort,
		Health: Health{
			Path:      engine.DefaultHealth.Path,
			Interval:  engine.DefaultHealth.Interval,
			Timeout:   engine.DefaultHealth.Timeout,
			Successes: engine.DefaultHealth.Successes,
			Failures:  engine.DefaultHealth.Failures,
		},
		StartTimeout: DefaultStartTimeout,
		DrainTimeout: DefaultDrainTimeout,
		StopGrace:    DefaultStopGrace,
		OnFailure:    OnFailure{BeforeTraffic: ActionRollback, AfterTraffic: ActionPause},
		Strategy: Strategy{
			Type:      StrategyRolling,
			Rolling:   Rolling{BatchSize: 1},
			BlueGreen: BlueGreen{RollbackWindow: 5 * time.Minute},
			Canary:    Canary{Instances: 1, Steps: DefaultSteps()},
		},
		Analysis: DefaultAnalysis(),
	}
}

// applyDefaults fills the defaults that depend on what else the file says.
func applyDefaults(d *decoder, c *Config) {
	if c.RawStateDir == "" {
		c.RawStateDir = ".cutover"
	}
	if len(c.Routers) == 0 {
		r := &Router{}
		r.setDefaults()
		c.Routers = map[string]*Router{DefaultRouterName: r}
	}
	for name, r := range c.Routers {
		r.Name = name
		if r.Admin == "" && r.Type == RouterBuiltin {
			r.Admin = "unix:" + filepath.Join(c.RawStateDir, "router-"+name+".sock")
		}
	}
	applyServeDefaults(d, c)
	for name, s := range c.Services {
		s.Name = name
		p := "services." + name
		if s.Router == "" && len(c.Routers) == 1 {
			s.Router = c.RouterNames()[0]
		}
		if s.Source.Type == SourceECR && s.Source.Repository == "" {
			s.Source.Repository = s.Image
		}
		if !d.present(p + ".strategy.rolling.max_surge") {
			s.Strategy.Rolling.MaxSurge = s.Strategy.Rolling.BatchSize
		}
		for i := range s.Strategy.Canary.Steps {
			st := &s.Strategy.Canary.Steps[i]
			if st.Analysis != nil {
				inherit(d, indexPath(p+".strategy.canary.steps", i)+".analysis", st.Analysis, s.Analysis)
			}
		}
	}
}

// inherit copies into a step's analysis every limit the step did not write.
func inherit(d *decoder, path string, dst *Analysis, from Analysis) {
	dv, fv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(from)
	fields, _ := structFields(dv.Type())
	for key, i := range fields {
		if !d.present(childPath(path, key)) {
			dv.Field(i).Set(fv.Field(i))
		}
	}
}

// normalize makes empty collections nil, so a config and its re-parsed
// Marshal output compare equal.
func normalize(c *Config) {
	for _, s := range c.Services {
		if len(s.Env) == 0 {
			s.Env = nil
		}
		if len(s.Command) == 0 {
			s.Command = nil
		}
	}
	if len(c.Serve.Users) == 0 {
		c.Serve.Users = nil
	}
}

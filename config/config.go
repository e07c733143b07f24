// Package config loads and validates cutover.yaml: the services cutover
// releases, the routers they sit behind and the strategy for each release.
//
// Loading never stops at the first problem: every unknown key, wrong type and
// impossible value is reported with the file and line it came from, so an
// operator fixes a file in one pass. The package is independent of the engine;
// durations are plain time.Duration and the command wiring converts.
package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/goccy/go-yaml"
)

// Version is the only schema version this package reads.
const Version = 1

// Config is a whole cutover.yaml with every default filled in.
type Config struct {
	Version int `yaml:"version"`
	// RawStateDir is state_dir as written; StateDir() is the absolute path.
	RawStateDir string              `yaml:"state_dir"`
	Routers     map[string]*Router  `yaml:"routers"`
	Services    map[string]*Service `yaml:"services"`
	// Prometheus is the metrics server analysis queries ask; nil: none.
	Prometheus *Prometheus `yaml:"prometheus,omitempty"`
	// Notifications are the webhooks told of every service's releases.
	Notifications []Notification `yaml:"notifications,omitempty"`
	// Serve is how `cutover serve` serves the console over SSH.
	Serve Serve `yaml:"serve"`

	// File is the name the config was loaded from, used in error messages.
	File string `yaml:"-"`
	// Dir is the absolute directory of File; relative paths resolve against it.
	Dir string `yaml:"-"`
}

// Router is what a service's traffic goes through: a `cutover router`
// process (type builtin: the public address clients hit and the admin
// endpoint the engine drives it through) or an HAProxy backend (type
// haproxy: driven through HAProxy's runtime API).
type Router struct {
	Name      string     `yaml:"-"`
	Type      RouterType `yaml:"type"`
	Listen    string     `yaml:"listen"`               // public host:port
	Admin     string     `yaml:"admin,omitempty"`      // builtin: "unix:PATH" or host:port
	TokenFile string     `yaml:"token_file,omitempty"` // builtin: bearer token for a TCP admin address
	Socket    string     `yaml:"socket,omitempty"`     // haproxy: runtime API socket (stats socket ... level admin)
	Backend   string     `yaml:"backend,omitempty"`    // haproxy: the backend whose servers are the route table
	Map       string     `yaml:"map,omitempty"`        // haproxy: the map cutover keeps its record in, named as HAProxy's config names it
}

// RouterType says what kind of router a router is.
type RouterType string

// Router types.
const (
	RouterBuiltin RouterType = "builtin" // cutover's own router process
	RouterHAProxy RouterType = "haproxy" // an HAProxy 2.6+ backend, over its runtime API
)

// Prometheus is a Prometheus server analysis queries are sent to.
type Prometheus struct {
	URL       string        `yaml:"url"`                  // http(s)://host:port, with a path prefix if any
	Timeout   time.Duration `yaml:"timeout"`              // per query
	TokenFile string        `yaml:"token_file,omitempty"` // bearer token, if the server wants one
}

// Notification is a webhook told of every release event worth telling.
type Notification struct {
	URL        string        `yaml:"url"`
	SecretFile string        `yaml:"secret_file,omitempty"` // key of the body's HMAC-SHA256 signature
	Template   string        `yaml:"template,omitempty"`    // text/template of the body (a Slack message); empty: the event's JSON
	Timeout    time.Duration `yaml:"timeout"`               // per attempt
}

// Service is one thing cutover releases.
type Service struct {
	Name         string            `yaml:"-"`
	Image        string            `yaml:"image"` // image repository, without a tag
	Source       Source            `yaml:"source"`
	Replicas     int               `yaml:"replicas"`
	Port         int               `yaml:"port"` // container port
	Env          map[string]string `yaml:"env,omitempty"`
	Command      []string          `yaml:"command,omitempty"`
	Network      string            `yaml:"network,omitempty"`
	Platform     PlatformType      `yaml:"platform"`
	Swarm        *Swarm            `yaml:"swarm,omitempty"` // only with platform swarm
	Router       string            `yaml:"router"`
	Health       Health            `yaml:"health"`
	StartTimeout time.Duration     `yaml:"start_timeout"` // launch until healthy
	DrainTimeout time.Duration     `yaml:"drain_timeout"` // weight 0 until in-flight requests end
	StopGrace    time.Duration     `yaml:"stop_grace"`    // SIGTERM until SIGKILL
	OnFailure    OnFailure         `yaml:"on_failure"`
	Strategy     Strategy          `yaml:"strategy"`
	Analysis     Analysis          `yaml:"analysis"` // limits for analysis steps that do not override them
}

// PlatformType says where a service's instances run.
type PlatformType string

// Platforms.
const (
	PlatformDocker PlatformType = "docker" // containers on the local Docker engine
	PlatformSwarm  PlatformType = "swarm"  // services on a Docker Swarm, through a manager
)

// Swarm holds what a service on Docker Swarm needs besides what every
// service has: where its tasks may run and what they may use. The
// service's network is then an overlay network.
type Swarm struct {
	// Constraints are placement constraints, as `docker service create
	// --constraint` takes them: node.role==worker, node.labels.zone!=b.
	Constraints  []string  `yaml:"constraints,omitempty"`
	Limits       Resources `yaml:"limits,omitempty"`       // most one task may use
	Reservations Resources `yaml:"reservations,omitempty"` // a node must have this free to take a task
}

// Resources is an amount of CPU and memory.
type Resources struct {
	CPUs float64 `yaml:"cpus,omitempty"` // cores; 0.5 is half of one
	// Memory is bytes with an optional unit, as docker reads it: 512m,
	// 1g, 268435456 (k, m, g and t are powers of 1024).
	Memory string `yaml:"memory,omitempty"`
}

// MemoryBytes is Memory in bytes; 0 when unset (validation has refused
// what does not parse).
func (r Resources) MemoryBytes() int64 {
	if r.Memory == "" {
		return 0
	}
	n, err := units.RAMInBytes(r.Memory)
	if err != nil {
		return 0
	}
	return n
}

// SourceType says where candidate images are listed from.
type SourceType string

// Image sources.
const (
	SourceDocker SourceType = "docker" // images already in the local Docker engine
	SourceECR    SourceType = "ecr"    // an AWS ECR repository
)

// Source says where candidate images for a service come from.
type Source struct {
	Type       SourceType `yaml:"type"`
	Repository string     `yaml:"repository,omitempty"`  // ECR repository; defaults to the service image
	Region     string     `yaml:"region,omitempty"`      // AWS region; empty uses the SDK's default chain
	Profile    string     `yaml:"profile,omitempty"`     // AWS shared-config profile
	RegistryID string     `yaml:"registry_id,omitempty"` // 12-digit account ID; empty is the caller's account
	Endpoint   string     `yaml:"endpoint,omitempty"`    // base URL override, for tests and private endpoints
	TagFilter  string     `yaml:"tag_filter,omitempty"`  // Go regexp; only matching tags are offered
	Semver     bool       `yaml:"semver,omitempty"`      // sort tags by semantic version instead of push time
}

// Health is how an instance is probed before it gets traffic.
type Health struct {
	Path      string        `yaml:"path"`
	Interval  time.Duration `yaml:"interval"`
	Timeout   time.Duration `yaml:"timeout"`
	Successes int           `yaml:"successes"` // consecutive passes to count as healthy
	Failures  int           `yaml:"failures"`  // consecutive failures allowed before unhealthy
}

// FailureAction is what the engine does when a release step fails.
type FailureAction string

// Failure actions.
const (
	ActionRollback FailureAction = "rollback"
	ActionPause    FailureAction = "pause"
)

// OnFailure picks the failure action by whether the new version has had
// traffic yet: before traffic a rollback costs nothing, after it an operator
// may want to look first.
type OnFailure struct {
	BeforeTraffic FailureAction `yaml:"before_traffic"`
	AfterTraffic  FailureAction `yaml:"after_traffic"`
}

// StrategyType names a release strategy.
type StrategyType string

// Strategies.
const (
	StrategyRolling   StrategyType = "rolling"
	StrategyBlueGreen StrategyType = "bluegreen"
	StrategyCanary    StrategyType = "canary"
)

// Strategy holds the chosen strategy and the settings of all three, so a
// release can switch strategy from the command line and still find settings.
type Strategy struct {
	Type      StrategyType `yaml:"type"`
	Rolling   Rolling      `yaml:"rolling"`
	BlueGreen BlueGreen    `yaml:"bluegreen"`
	Canary    Canary       `yaml:"canary"`
}

// Rolling replaces instances a batch at a time.
type Rolling struct {
	BatchSize      int           `yaml:"batch_size"`      // instances replaced per batch
	MaxSurge       int           `yaml:"max_surge"`       // new instances allowed above replicas
	MaxUnavailable int           `yaml:"max_unavailable"` // old instances that may be gone before new ones are healthy
	Pause          time.Duration `yaml:"pause"`           // wait between batches
}

// BlueGreen starts a whole new fleet, verifies it, then switches all traffic.
type BlueGreen struct {
	SmokePath      string        `yaml:"smoke_path,omitempty"` // path that must answer 2xx on every green instance
	Approval       bool          `yaml:"approval"`             // wait for an operator before the switch
	RollbackWindow time.Duration `yaml:"rollback_window"`      // blue stays warm this long after the switch
}

// Canary runs a few new instances and raises their traffic step by step.
type Canary struct {
	Instances int    `yaml:"instances"`
	Steps     []Step `yaml:"steps"`
}

// Step is one canary step: set a traffic weight, then pass at most one gate.
// A step without a weight gates at the current weight.
type Step struct {
	Weight   *int          `yaml:"weight,omitempty"` // percent of traffic to the canary, 0..100
	Approval bool          `yaml:"approval,omitempty"`
	Pause    time.Duration `yaml:"pause,omitempty"`
	Analysis *Analysis     `yaml:"analysis,omitempty"` // fields not given come from the service's analysis
	Webhook  *Webhook      `yaml:"webhook,omitempty"`
}

// Webhook is a gate that asks another system: a 2xx answer to a POST of
// the gate's event within the timeout lets the release go on.
type Webhook struct {
	URL        string        `yaml:"url"`
	Timeout    time.Duration `yaml:"timeout"`
	SecretFile string        `yaml:"secret_file,omitempty"` // signs the body as notifications are
}

// GateKind names what a step waits for after setting its weight.
type GateKind string

// Gate kinds.
const (
	GateNone     GateKind = ""
	GateApproval GateKind = "approval"
	GatePause    GateKind = "pause"
	GateAnalysis GateKind = "analysis"
	GateWebhook  GateKind = "webhook"
)

// Gate says which gate the step has; validation guarantees at most one.
func (s Step) Gate() GateKind {
	switch {
	case s.Approval:
		return GateApproval
	case s.Pause > 0:
		return GatePause
	case s.Analysis != nil:
		return GateAnalysis
	case s.Webhook != nil:
		return GateWebhook
	}
	return GateNone
}

// Analysis is a window of router metrics the canary must pass. A zero limit
// is not checked.
type Analysis struct {
	Window               time.Duration `yaml:"window"`
	MaxErrorRate         float64       `yaml:"max_error_rate"`           // 0..1 of canary requests
	MaxP99               time.Duration `yaml:"max_p99"`                  // canary p99 latency
	MaxErrorRateVsStable float64       `yaml:"max_error_rate_vs_stable"` // canary error rate / stable's
	MaxP99VsStable       float64       `yaml:"max_p99_vs_stable"`        // canary p99 / stable's
	MinRequests          int           `yaml:"min_requests"`             // fewer canary requests is inconclusive
	Queries              []Query       `yaml:"queries,omitempty"`        // PromQL checks, on the top-level prometheus
}

// Query is a PromQL check of an analysis: measured every interval during
// the window, each value must lie within min and max.
type Query struct {
	Name                  string        `yaml:"name"`
	Query                 string        `yaml:"query"` // text/template: {{.Service}}, {{.Canary}}, {{.Stable}}, {{.Window}}
	Min                   *float64      `yaml:"min,omitempty"`
	Max                   *float64      `yaml:"max,omitempty"`
	Interval              time.Duration `yaml:"interval"`
	FailureLimit          int           `yaml:"failure_limit"`
	InconclusiveLimit     int           `yaml:"inconclusive_limit"`
	ConsecutiveErrorLimit int           `yaml:"consecutive_error_limit"`
}

// Load reads and validates the config file at path. Problems with the file's
// content come back as Errors; failing to read it is an ordinary error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as a config file called name. The error, if any, is
// Errors listing every problem found, sorted by line.
func Parse(name string, data []byte) (*Config, error) {
	dir := filepath.Dir(name)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	c := &Config{Version: Version, RawStateDir: ".cutover", File: name, Dir: dir}
	d := newDecoder(name)
	if d.decodeFile(data, c) {
		applyDefaults(d, c)
		validate(d, c)
	}
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	normalize(c)
	return c, nil
}

// Service returns the named service. An empty name picks the only service
// when there is exactly one, so single-service files need no argument.
func (c *Config) Service(name string) (*Service, error) {
	if name == "" && len(c.Services) == 1 {
		for _, s := range c.Services {
			return s, nil
		}
	}
	if s, ok := c.Services[name]; ok {
		return s, nil
	}
	known := strings.Join(c.ServiceNames(), ", ")
	if name == "" {
		return nil, fmt.Errorf("%s: name a service: there are %d (%s)", c.File, len(c.Services), known)
	}
	return nil, fmt.Errorf("%s: unknown service %q (known: %s)", c.File, name, known)
}

// ServiceNames lists the services in name order.
func (c *Config) ServiceNames() []string { return sortedKeys(c.Services) }

// RouterNames lists the routers in name order.
func (c *Config) RouterNames() []string { return sortedKeys(c.Routers) }

// StateDir is the absolute directory for the journal and router state.
func (c *Config) StateDir() string { return c.Resolve(c.RawStateDir) }

// Resolve makes a path from the config file absolute, relative to Dir.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// AdminAddr returns how to dial the router's admin API: network "unix" with
// an absolute socket path, or "tcp" with host:port.
func (c *Config) AdminAddr(r *Router) (network, address string) {
	if path, ok := strings.CutPrefix(r.Admin, "unix:"); ok {
		return "unix", c.Resolve(path)
	}
	return "tcp", r.Admin
}

// Marshal renders the effective config, defaults included, as YAML that
// Parse reads back to an equal Config.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf,
		yaml.Indent(2),
		yaml.IndentSequence(true),
		yaml.CustomMarshaler[time.Duration](func(d time.Duration) ([]byte, error) {
			return []byte(FormatDuration(d)), nil
		}),
	)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// FormatDuration writes d the way people write it in the file: "5m", not
// time.Duration's "5m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package engine

import (
	"fmt"
	"strings"
	"time"
)

// Target is the image a release moves a service to.
type Target struct {
	Image   string `json:"image"`            // reference to run, ideally pinned by digest
	Version string `json:"version"`          // what operators call it: "1.1.0"
	Digest  string `json:"digest,omitempty"` // sha256:… where known
}

// StrategyType names a release recipe.
type StrategyType string

// Strategies.
const (
	Rolling   StrategyType = "rolling"
	BlueGreen StrategyType = "bluegreen"
	Canary    StrategyType = "canary"
)

// FailureAction is what the engine does when a step fails.
type FailureAction string

// Failure actions.
const (
	FailRollback FailureAction = "rollback"
	FailPause    FailureAction = "pause"
)

// FailurePolicy chooses the failure action by whether the new version has
// had traffic yet: before traffic a rollback costs nothing, after it an
// operator may want to look first.
type FailurePolicy struct {
	BeforeTraffic FailureAction // default rollback
	AfterTraffic  FailureAction // default pause
}

// ServiceSpec is the engine's view of one service's settings; the config
// package's cutover.yaml is converted into it by the caller.
type ServiceSpec struct {
	Name         string
	Replicas     int
	Port         int // container port
	Env          map[string]string
	Command      []string
	Network      string
	Labels       map[string]string // extra labels on launched instances
	Placement    []string          // Swarm placement constraints
	Resources    Resources         // Swarm limits and reservations
	Health       HealthCheck
	StartTimeout time.Duration // launch → healthy
	DrainTimeout time.Duration // weight 0 → no requests in flight
	StopGrace    time.Duration // SIGTERM → SIGKILL
	OnFailure    FailurePolicy
	Strategy     StrategySpec
}

// StrategySpec selects and tunes a strategy.
type StrategySpec struct {
	Type      StrategyType
	Rolling   RollingSpec
	BlueGreen BlueGreenSpec
	Canary    CanarySpec
}

// RollingSpec tunes the rolling recipe. Each batch launches up to BatchSize
// new instances (never more than MaxSurge above Replicas) and retires up to
// BatchSize old ones (never leaving fewer than Replicas-MaxUnavailable).
type RollingSpec struct {
	BatchSize      int           // default 1
	MaxSurge       int           // default BatchSize
	MaxUnavailable int           // default 0
	Pause          time.Duration // timed pause between batches; 0 for none
}

// BlueGreenSpec tunes the blue/green recipe.
type BlueGreenSpec struct {
	SmokePath      string        // GET on each green instance before the switch; 2xx required
	Approval       bool          // wait for an operator before the switch
	RollbackWindow time.Duration // blue kept warm after the switch
}

// CanarySpec tunes the canary recipe.
type CanarySpec struct {
	Instances int // new instances launched for the first step; default 1
	Steps     []CanaryStep
}

// NoShift as a CanaryStep's Weight makes the step a gate only.
const NoShift = -1

// CanaryStep shifts the new version to Weight percent (unless NoShift) and
// then waits on Gate (unless its Kind is empty).
type CanaryStep struct {
	Weight int
	Gate   Gate
}

// GateKind names what a gate waits for.
type GateKind string

// Gate kinds.
const (
	GateApproval GateKind = "approval" // an operator's approve (or promote)
	GatePause    GateKind = "pause"    // a fixed time
	GateAnalysis GateKind = "analysis" // the router's figures (and queries) over a window
	GateWebhook  GateKind = "webhook"  // another system's answer to an HTTP call
)

// Gate holds the release until a condition is met.
type Gate struct {
	Kind     GateKind
	Pause    time.Duration // for GatePause
	Analysis AnalysisSpec  // for GateAnalysis
	Webhook  WebhookSpec   `json:",omitzero"` // for GateWebhook
	// Key names the gate within its release, the same however often the
	// release is planned again ("canary step 2", "before the switch"):
	// an approval is given for one key and passes no other gate.
	Key string `json:",omitempty"`
}

// String describes the gate as the plan prints it.
func (g Gate) String() string {
	switch g.Kind {
	case GateApproval:
		return "wait for approval"
	case GatePause:
		return "pause " + fmtDuration(g.Pause)
	case GateAnalysis:
		return "analysis " + fmtDuration(g.Analysis.Window) + ": " + g.Analysis.String()
	case GateWebhook:
		return "webhook " + g.Webhook.URL + " (2xx within " + fmtDuration(g.Webhook.timeout()) + ")"
	}
	return string(g.Kind)
}

// AnalysisSpec limits what the new version may show over Window. Zero
// limits are not checked. The relative limits compare with the stable
// version over the same window and are skipped when stable served fewer
// than MinRequests; the error-rate one never demands less than 0.1%, so a
// stable version with no errors does not fail a canary over one error.
type AnalysisSpec struct {
	Window               time.Duration
	MaxErrorRate         float64       // fraction: 0.01 is 1%
	MaxP99               time.Duration // absolute p99 latency
	MaxErrorRateVsStable float64       // ratio: 2 means at most twice stable's error rate
	MaxP99VsStable       float64       // ratio: 1.5 means at most 1.5 × stable's p99
	MinRequests          int64         // fewer requests make the window inconclusive
	// Queries are checks on a metrics server (Deps.Metrics), measured
	// during the window beside the router's figures.
	Queries []QuerySpec `json:",omitempty"`
}

// judgesRouter says whether the router's figures are judged: always
// without queries (an analysis with no limits still needs traffic), and
// with queries only when a router limit is set.
func (a AnalysisSpec) judgesRouter() bool {
	return len(a.Queries) == 0 || a.MaxErrorRate > 0 || a.MaxP99 > 0 || a.MaxErrorRateVsStable > 0 ||
		a.MaxP99VsStable > 0 || a.MinRequests > 0
}

// String lists the limits: "error rate ≤ 1%, p99 ≤ 500ms, ≥ 50 requests".
func (a AnalysisSpec) String() string {
	var parts []string
	if a.MaxErrorRate > 0 {
		parts = append(parts, "error rate ≤ "+fmtPercent(a.MaxErrorRate))
	}
	if a.MaxErrorRateVsStable > 0 {
		parts = append(parts, fmt.Sprintf("error rate ≤ %g× stable", a.MaxErrorRateVsStable))
	}
	if a.MaxP99 > 0 {
		parts = append(parts, "p99 ≤ "+fmtDuration(a.MaxP99))
	}
	if a.MaxP99VsStable > 0 {
		parts = append(parts, fmt.Sprintf("p99 ≤ %g× stable", a.MaxP99VsStable))
	}
	if a.MinRequests > 0 {
		parts = append(parts, fmt.Sprintf("≥ %s requests", fmtCount(a.MinRequests)))
	}
	for _, q := range a.Queries {
		parts = append(parts, q.String())
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return joinComma(parts)
}

// Actor says who gave a command or started a release: the local user, the
// host, and over SSH the client address (from SSH_CLIENT/SSH_CONNECTION).
// Through `cutover serve` the user is the person the session's SSH key
// belongs to, and the key, its fingerprint, the login name and the role
// say exactly which key did it.
type Actor struct {
	User   string `json:"user"`
	Host   string `json:"host"`
	Remote string `json:"remote,omitempty"`
	// Login is the user name the SSH client asked for (any name is
	// accepted: the key decides who it is).
	Login string `json:"login,omitempty"`
	// Key names the SSH key the session authenticated with (its comment
	// in the config), Fingerprint is its SHA256 fingerprint.
	Key         string `json:"key,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Role        Role   `json:"role,omitempty"`
}

// String renders "alice@host (from 10.0.0.5)", or for an SSH key "alice
// (operator, key alice@laptop SHA256:…, ssh cutover@host from 10.0.0.5:4711)".
func (a Actor) String() string {
	if a.User == "" && a.Host == "" && a.Remote == "" && a.Fingerprint == "" {
		return "unknown"
	}
	if a.Fingerprint == "" {
		s := a.User
		if a.Host != "" {
			s += "@" + a.Host
		}
		if a.Remote != "" {
			s += " (from " + a.Remote + ")"
		}
		return s
	}
	var parts []string
	if a.Role != "" {
		parts = append(parts, string(a.Role))
	}
	key := "key " + a.Fingerprint
	if a.Key != "" {
		key = "key " + a.Key + " " + a.Fingerprint
	}
	parts = append(parts, key)
	via := "ssh " + a.Login
	if a.Host != "" {
		via += "@" + a.Host
	}
	if a.Remote != "" {
		via += " from " + a.Remote
	}
	parts = append(parts, strings.TrimSpace(via))
	return a.User + " (" + strings.Join(parts, ", ") + ")"
}

// withDefaults fills the zero settings the engine needs to make progress.
// The defaults of a service's settings, in one place: the config fills a
// file's missing keys with them, and the engine a spec's zero fields.
var (
	// DefaultHealth probes GET /healthz every second (1s timeout): two
	// passes in a row make an instance healthy, three failures unhealthy.
	DefaultHealth = HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: time.Second, Successes: 2, Failures: 3}
)

// Default timings of a release.
const (
	DefaultStartTimeout = time.Minute      // launch → healthy
	DefaultDrainTimeout = 30 * time.Second // weight 0 → nothing in flight
	DefaultStopGrace    = 10 * time.Second // SIGTERM → SIGKILL
)

func (s ServiceSpec) withDefaults() ServiceSpec {
	if s.Replicas <= 0 {
		s.Replicas = 1
	}
	h, d := &s.Health, DefaultHealth
	if h.Path == "" {
		h.Path = d.Path
	}
	if h.Interval <= 0 {
		h.Interval = d.Interval
	}
	if h.Timeout <= 0 {
		h.Timeout = d.Timeout
	}
	if h.Successes <= 0 {
		h.Successes = d.Successes
	}
	if h.Failures <= 0 {
		h.Failures = d.Failures
	}
	if s.StartTimeout <= 0 {
		s.StartTimeout = DefaultStartTimeout
	}
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = DefaultDrainTimeout
	}
	if s.StopGrace <= 0 {
		s.StopGrace = DefaultStopGrace
	}
	if s.OnFailure.BeforeTraffic == "" {
		s.OnFailure.BeforeTraffic = FailRollback
	}
	if s.OnFailure.AfterTraffic == "" {
		s.OnFailure.AfterTraffic = FailPause
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = Rolling
	}
	r := &s.Strategy.Rolling
	if r.BatchSize <= 0 {
		r.BatchSize = 1
	}
	if r.MaxSurge <= 0 && r.MaxUnavailable <= 0 {
		r.MaxSurge = r.BatchSize
	}
	if s.Strategy.Canary.Instances <= 0 {
		s.Strategy.Canary.Instances = 1
	}
	return s
}

// validate reports settings no plan can be made from.
func (s ServiceSpec) validate() error {
	if s.Name == "" {
		return fmt.Errorf("service has no name")
	}
	switch s.Strategy.Type {
	case Rolling, BlueGreen:
	case Canary:
		for i, st := range s.Strategy.Canary.Steps {
			if st.Weight != NoShift && (st.Weight < 0 || st.Weight > 100) {
				return fmt.Errorf("%s: canary step %d: weight %d is not between 0 and 100", s.Name, i+1, st.Weight)
			}
			if st.Weight == NoShift && st.Gate.Kind == "" {
				return fmt.Errorf("%s: canary step %d: neither a weight nor a gate", s.Name, i+1)
			}
			if err := st.Gate.validate(); err != nil {
				return fmt.Errorf("%s: canary step %d: %w", s.Name, i+1, err)
			}
		}
	default:
		return fmt.Errorf("%s: unknown strategy %q", s.Name, s.Strategy.Type)
	}
	for _, a := range []FailureAction{s.OnFailure.BeforeTraffic, s.OnFailure.AfterTraffic} {
		if a != FailRollback && a != FailPause {
			return fmt.Errorf("%s: unknown failure action %q", s.Name, a)
		}
	}
	return nil
}

func (g Gate) validate() error {
	switch g.Kind {
	case "", GateApproval:
	case GatePause:
		if g.Pause <= 0 {
			return fmt.Errorf("pause gate needs a duration")
		}
	case GateAnalysis:
		if g.Analysis.Window <= 0 {
			return fmt.Errorf("analysis gate needs a window")
		}
		for _, q := range g.Analysis.Queries {
			if err := q.validate(); err != nil {
				return fmt.Errorf("analysis query %q: %w", q.Name, err)
			}
		}
	case GateWebhook:
		if g.Webhook.URL == "" {
			return fmt.Errorf("webhook gate needs a URL")
		}
	default:
		return fmt.Errorf("unknown gate %q", g.Kind)
	}
	return nil
}

package engine

import (
	"context"
	"time"
)

// Labels that mark what cutover owns on a platform. They are the truth
// after a crash: status is rebuilt from them.
const (
	LabelManaged = "cutover.managed" // "true" on every instance cutover launched
	LabelService = "cutover.service"
	LabelVersion = "cutover.version"
	LabelDigest  = "cutover.digest"
	LabelRelease = "cutover.release"
	LabelTest    = "cutover.test" // set by tests so leftovers can be found and removed
)

// InstanceSpec says what to launch.
type InstanceSpec struct {
	Service   string
	Version   string
	Image     string // reference to run, ideally by digest
	ReleaseID string
	Port      int // container port the service listens on
	Env       map[string]string
	Command   []string
	Network   string            // optional Docker network; empty publishes Port on loopback
	Labels    map[string]string // extra labels (for example LabelTest)
	// StopGrace is how long the instance gets between SIGTERM and SIGKILL.
	// Docker takes it at Stop; Swarm must know it at launch, since a
	// service's stop grace cannot change without Swarm restarting its task.
	StopGrace time.Duration
	// Placement and Resources are honoured by platforms that place
	// instances on nodes (Swarm); the config refuses them elsewhere.
	Placement []string // constraints such as "node.labels.zone==a"
	Resources Resources
}

// Resources bound what one instance may use (limits) and what a node must
// have free to take it (reservations). Zero means no bound.
type Resources struct {
	LimitCPUs     float64 `json:"limit_cpus,omitempty"`   // cores, 0.5 is half a core
	LimitMemory   int64   `json:"limit_memory,omitempty"` // bytes
	ReserveCPUs   float64 `json:"reserve_cpus,omitempty"`
	ReserveMemory int64   `json:"reserve_memory,omitempty"`
}

// InstanceState is the platform's view of a process.
type InstanceState string

// Instance states.
const (
	StateCreated    InstanceState = "created"
	StateRunning    InstanceState = "running"
	StateRestarting InstanceState = "restarting"
	StateExited     InstanceState = "exited"
	StateGone       InstanceState = "gone"
)

// Instance is one running copy of a service version.
type Instance struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Service   string        `json:"service"`
	Version   string        `json:"version"`
	Image     string        `json:"image"`
	Digest    string        `json:"digest"`
	ReleaseID string        `json:"release"`
	Addr      string        `json:"addr"`           // host:port the router reaches it on
	Node      string        `json:"node,omitempty"` // the host it runs on, where the platform has several
	State     InstanceState `json:"state"`
	Started   time.Time     `json:"started"`
	Restarts  int           `json:"restarts"`
	ExitCode  int           `json:"exit_code"`
}

// HealthStatus is the verdict of one probe.
type HealthStatus string

// Health verdicts.
const (
	HealthUnknown   HealthStatus = "unknown"
	HealthStarting  HealthStatus = "starting"
	HealthHealthy   HealthStatus = "healthy"
	HealthUnhealthy HealthStatus = "unhealthy"
	HealthCrashed   HealthStatus = "crashed" // exited or restarting: will not become healthy by waiting
)

// HealthCheck is how an instance is probed.
type HealthCheck struct {
	Path      string        // HTTP path, for example /healthz
	Interval  time.Duration // between probes
	Timeout   time.Duration // per probe
	Successes int           // consecutive passes to count as healthy
	Failures  int           // consecutive failures allowed before unhealthy
}

// Health is the result of one probe of one instance.
type Health struct {
	Status HealthStatus `json:"status"`
	Detail string       `json:"detail,omitempty"` // what failed: "GET /healthz: 503", "exited with code 2"
	// Docker is the image's own HEALTHCHECK state where it defines one.
	Docker string `json:"docker,omitempty"`
	// Restarts is how often the platform restarted the instance after it
	// died; the engine compares it with the count at launch.
	Restarts int `json:"restarts,omitempty"`
}

// onNode is " on NODE" for an instance whose node is known, else "":
// how events say where an instance runs.
func (in Instance) onNode() string {
	if in.Node == "" {
		return ""
	}
	return " on " + in.Node
}

// Platform runs instances. Adapters (Docker, Swarm) implement it; the engine
// decides what to run and when.
type Platform interface {
	// Instances lists the service's instances from the platform's labels.
	Instances(ctx context.Context, service string) ([]Instance, error)
	// Launch pulls nothing: the image must already be present (see Puller).
	Launch(ctx context.Context, spec InstanceSpec) (Instance, error)
	// Stop stops and removes the instance, waiting up to grace.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Health probes the instance once.
	Health(ctx context.Context, id string, check HealthCheck) (Health, error)
}

// Image is a candidate image in a registry.
type Image struct {
	Repository string    `json:"repository"`
	Tags       []string  `json:"tags"`
	Digest     string    `json:"digest"`
	Pushed     time.Time `json:"pushed"`
	Size       int64     `json:"size"`
	Scan       string    `json:"scan,omitempty"` // scan status and finding counts, where known
}

// Registry lists candidate images, newest first.
type Registry interface {
	ListImages(ctx context.Context, repo string) ([]Image, error)
}

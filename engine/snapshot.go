package engine

import "time"

// StepStatus is how far a step of the plan has got.
type StepStatus string

// Step statuses.
const (
	StepPending StepStatus = "pending"
	StepRunning StepStatus = "running"
	StepDoneOK  StepStatus = "done"
	StepSkipped StepStatus = "skipped" // already done per the actual state, or skipped by promote
	StepFailed  StepStatus = "failed"
)

// StepView is a step of the plan with its progress.
type StepView struct {
	Step        Step       `json:"step"`
	Description string     `json:"description"`
	Status      StepStatus `json:"status"`
	Started     time.Time  `json:"started,omitzero"`
	Ended       time.Time  `json:"ended,omitzero"`
}

// GateView is the gate being waited on.
type GateView struct {
	Gate       Gate            `json:"gate"`
	Step       int             `json:"step"`
	WaitingFor string          `json:"waiting_for"` // "an operator's approve (or promote)", "22s more", "analysis window: 40s of 1m"
	Since      time.Time       `json:"since"`
	Remaining  time.Duration   `json:"remaining,omitempty"` // timed gates; frozen while paused
	Analysis   *AnalysisResult `json:"analysis,omitempty"`  // the verdict, once the window closed
}

// InstanceView is one instance of the service as the release sees it.
type InstanceView struct {
	Instance Instance `json:"instance"`
	Role     string   `json:"role"` // "new", "stable" or "old"
	Health   Health   `json:"health"`
	Healthy  bool     `json:"healthy"` // passed its checks: may take traffic
	Weight   int      `json:"weight"`
}

// Snapshot is the whole state of a release at one moment, for screens.
type Snapshot struct {
	ID        string         `json:"id"`
	Service   string         `json:"service"`
	Kind      ReleaseKind    `json:"kind"`
	From      []VersionRef   `json:"from"`
	To        Target         `json:"to"`
	Strategy  StrategyType   `json:"strategy"`
	State     ReleaseState   `json:"state"`
	PausedBy  string         `json:"paused_by,omitempty"` // "operator" or "failure"
	Step      int            `json:"step"`                // index of the current step, -1 before the first
	Steps     []StepView     `json:"steps"`
	Plan      Plan           `json:"plan"`
	Gate      *GateView      `json:"gate,omitempty"`
	Instances []InstanceView `json:"instances"`
	Table     RouteTable     `json:"table"`
	Stats     Stats          `json:"stats"`
	Epoch     uint64         `json:"epoch"` // the epoch this release writes with
	Started   time.Time      `json:"started,omitzero"`
	Ended     time.Time      `json:"ended,omitzero"`
	Elapsed   time.Duration  `json:"elapsed"`
	LastError string         `json:"last_error,omitempty"`
	LastEvent string         `json:"last_event,omitempty"`
	Seq       int64          `json:"seq"` // sequence number of the last event published
	Outcome   Outcome        `json:"outcome,omitempty"`
	// RollbackFirst says what a rollback would do first, from the table
	// now, and how long that takes (RollbackFirst).
	RollbackFirst string `json:"rollback_first,omitempty"`
	Actor         Actor  `json:"actor"`
}

// Snapshot returns a copy of the release's current state.
func (r *Release) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.snap
	s.Steps = append([]StepView(nil), s.Steps...)
	s.Instances = append([]InstanceView(nil), s.Instances...)
	s.Table.Backends = append([]Backend(nil), s.Table.Backends...)
	if s.Gate != nil {
		g := *s.Gate
		s.Gate = &g
	}
	if !s.Started.IsZero() {
		end := s.Ended
		if end.IsZero() {
			end = r.deps.Clock.Now()
		}
		s.Elapsed = end.Sub(s.Started)
	}
	return s
}

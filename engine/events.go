package engine

import "time"

// ReleaseState is where a release stands.
type ReleaseState string

// Release states. The last five are final for a run of the executor;
// aborted and failed releases can be resumed or rolled back later.
const (
	ReleaseRunning     ReleaseState = "running"
	ReleasePaused      ReleaseState = "paused"
	ReleaseWaiting     ReleaseState = "waiting-for-approval"
	ReleaseRollingBack ReleaseState = "rolling-back"
	ReleaseSucceeded   ReleaseState = "succeeded"
	ReleaseRolledBack  ReleaseState = "rolled-back"
	ReleaseFailed      ReleaseState = "failed"
	ReleaseAborted     ReleaseState = "aborted"
	ReleaseTakenOver   ReleaseState = "taken-over"
)

// Finished reports whether nothing more will happen to the release's
// instances without a new run: succeeded, rolled back or taken over.
func (s ReleaseState) Finished() bool {
	return s == ReleaseSucceeded || s == ReleaseRolledBack || s == ReleaseTakenOver
}

// EventKind says what happened.
type EventKind string

// Event kinds.
const (
	EventPlanned       EventKind = "planned"        // the plan, one step per line in Message
	EventStarted       EventKind = "started"        // the release began (or resumed) with Epoch claimed
	EventStepStarted   EventKind = "step-started"   //
	EventStepDone      EventKind = "step-done"      //
	EventStepSkipped   EventKind = "step-skipped"   // already done according to the actual state
	EventPulling       EventKind = "pulling"        // about to fetch the target's image onto the host (Deps.Puller)
	EventPullProgress  EventKind = "pull-progress"  // a pull status line, at most about one per second per layer
	EventPulled        EventKind = "pulled"         // the image is on the host
	EventLaunching     EventKind = "launching"      // about to call Platform.Launch
	EventLaunched      EventKind = "launched"       // Instance set
	EventHealthy       EventKind = "healthy"        // Instance passed its checks
	EventUnhealthy     EventKind = "unhealthy"      // Instance failed: crashed, restarted or failed checks
	EventReplaced      EventKind = "replaced"       // the platform replaced an instance by itself (Swarm): Instance is the newcomer
	EventApplying      EventKind = "applying"       // about to apply Table
	EventApplied       EventKind = "applied"        // Table is live
	EventDraining      EventKind = "draining"       // waiting for in-flight requests of Instances
	EventDrained       EventKind = "drained"        //
	EventDrainTimeout  EventKind = "drain-timeout"  // stopping anyway after the drain timeout
	EventStopping      EventKind = "stopping"       // about to call Platform.Stop
	EventStopped       EventKind = "stopped"        //
	EventVerified      EventKind = "verified"       // blue/green: green instance verified directly
	EventGateWaiting   EventKind = "gate-waiting"   // Gate set
	EventGatePassed    EventKind = "gate-passed"    // Gate (and Analysis) set
	EventGateFailed    EventKind = "gate-failed"    //
	EventInconclusive  EventKind = "inconclusive"   // analysis saw too few requests: paused
	EventCommand       EventKind = "command"        // an operator command was accepted
	EventPaused        EventKind = "paused"         //
	EventResumed       EventKind = "resumed"        //
	EventFailure       EventKind = "failure"        // Error says what; Message what the engine does about it
	EventPromoted      EventKind = "promoted"       //
	EventRollingBack   EventKind = "rolling-back"   //
	EventTakenOver     EventKind = "taken-over"     // another writer holds a newer epoch
	EventFinished      EventKind = "finished"       // Outcome set
	EventHeartbeatLost EventKind = "heartbeat-lost" // the journal lease went to someone else
)

// Event kinds of analysis windows and notifications. An inconclusive
// verdict may also come from a query with no data.
const (
	EventAnalysisProgress EventKind = "analysis-progress" // an analysis window's figures so far (Analysis set), every few seconds
	// EventNotifyFailed records a notification that did not reach its
	// target. It is journaled beside the release by the notifier, not by
	// the release: it never changes the record's state or step.
	EventNotifyFailed EventKind = "notify-failed"
)

// Annotation says whether events of kind k only annotate a release: they
// are stored with its events but leave its record's state and step alone.
func (k EventKind) Annotation() bool { return k == EventNotifyFailed }

// Event is one thing that happened in a release. Events are plain values:
// drivers (the TUI, the headless CLI) render them, the journal stores them.
type Event struct {
	Seq     int64        `json:"seq"` // 1, 2, … within one run of a release
	At      time.Time    `json:"at"`
	Release string       `json:"release"`
	Service string       `json:"service"`
	Kind    EventKind    `json:"kind"`
	Step    int          `json:"step"`  // index into the plan, -1 when not in a step
	State   ReleaseState `json:"state"` // the release's state after this event
	Message string       `json:"message"`
	Error   string       `json:"error,omitempty"`

	Instance *Instance       `json:"instance,omitempty"`
	Health   *Health         `json:"health,omitempty"`
	Table    *RouteTable     `json:"table,omitempty"`
	Gate     *Gate           `json:"gate,omitempty"`
	Analysis *AnalysisResult `json:"analysis,omitempty"`
	Outcome  Outcome         `json:"outcome,omitempty"`
	Command  Command         `json:"command,omitempty"`
	Actor    *Actor          `json:"actor,omitempty"` // who gave Command
	Epoch    uint64          `json:"epoch,omitempty"`
	Plan     []string        `json:"plan,omitempty"`
	IDs      []string        `json:"ids,omitempty"`    // instances a drain or stop concerns
	Missed   int             `json:"missed,omitempty"` // events this subscriber lost to a full buffer before this one
}

// Outcome is how a run of the executor ended; the CLI maps it to an exit code.
type Outcome string

// Outcomes.
const (
	Succeeded          Outcome = "succeeded"
	RolledBack         Outcome = "rolled-back"
	Failed             Outcome = "failed"               // paused on failure, then detached or aborted
	Aborted            Outcome = "aborted"              // stopped by an operator; resumable
	TakenOver          Outcome = "taken-over"           // another writer fenced this one out
	WaitingForApproval Outcome = "waiting-for-approval" // detached at an approval gate
)

// State is the journal state a run that ended with o leaves behind; the
// console and the CLI name a finished run by it.
func (o Outcome) State() ReleaseState {
	switch o {
	case Succeeded:
		return ReleaseSucceeded
	case RolledBack:
		return ReleaseRolledBack
	case Failed:
		return ReleaseFailed
	case TakenOver:
		return ReleaseTakenOver
	case WaitingForApproval:
		return ReleaseWaiting
	}
	return ReleaseAborted
}

// Command is an operator's instruction to a running release.
type Command string

// Commands.
const (
	CmdApprove  Command = "approve"  // pass the approval gate being waited on
	CmdPause    Command = "pause"    // stop advancing; change nothing
	CmdResume   Command = "resume"   // continue after a pause; retry a failed step
	CmdPromote  Command = "promote"  // skip the remaining steps: launch the rest, 100% new, retire old
	CmdRollback Command = "rollback" // 100% to stable at once, then retire the new instances
	CmdAbort    Command = "abort"    // end Run now, leaving everything as it is
)

package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Status is the truth about one service, rebuilt from the platform, the
// router and the journal, so it holds even after the process that ran a
// release died: what `cutover status` prints and the console shows.
type Status struct {
	Service   string           `json:"service"`
	Router    RouterStatus     `json:"router"`
	Instances []InstanceStatus `json:"instances"`
	// Release is the latest release (nil if none); Lease, a release in
	// progress and whether its owner lives.
	Release *ReleaseRecord `json:"release,omitempty"`
	Lease   *LeaseStatus   `json:"lease,omitempty"`
	// Gate is the approval gate the latest release waits at, if it does.
	Gate *GateView `json:"gate,omitempty"`
	// Analysis is, while the latest release is at an analysis gate, the
	// window's figures as last journaled (every few seconds), or the
	// verdict it stopped on.
	Analysis *AnalysisResult `json:"analysis,omitempty"`
	// Next says what the next command will do to the latest release: an
	// approve (which gate it passes and what follows, or the failure it
	// will apply first), a resume.
	Next string `json:"next,omitempty"`
	// RollbackTo is the version a rollback returns to ("" when the
	// journal knows none); RollbackFirst, what it does first and how long
	// that takes.
	RollbackTo    VersionRef `json:"rollback_to,omitzero"`
	RollbackFirst string     `json:"rollback_first,omitempty"`
	// Warnings are disagreements between the table and the platform.
	Warnings []string `json:"warnings,omitempty"`
}

// RouterStatus is the service's router as status shows it.
type RouterStatus struct {
	// Listen and Admin say where the router is (the caller's config).
	Listen string `json:"listen,omitempty"`
	Admin  string `json:"admin,omitempty"`
	// Error says why the router could not be read, if it could not: the
	// instances still show.
	Error string     `json:"error,omitempty"`
	Table RouteTable `json:"table"`
	// Shares is each version's fraction of the traffic (0..1).
	Shares map[string]float64 `json:"shares"`
	Stats  Stats              `json:"-"`
}

// InstanceStatus is one instance with its health and routing.
type InstanceStatus struct {
	Instance
	Health   Health `json:"health"`
	Weight   int    `json:"weight"`
	InRouter bool   `json:"in_router"`
	InFlight int64  `json:"in_flight"`
}

// LeaseStatus is a service's lease and whether its owner still lives.
type LeaseStatus struct {
	Lease
	Live bool `json:"live"`
}

// Healthy reports whether the instance passed its probe.
func (s InstanceStatus) Healthy() bool { return s.Health.Status == HealthHealthy }

// StatusOptions say where the status is read from.
type StatusOptions struct {
	Now   time.Time
	Host  string           // this host, for the lease's liveness
	Alive func(Owner) bool // whether an owner on this host runs
	Probe bool             // probe each instance (status does; a quick view may not)
	Spec  ServiceSpec      // health check, policies, replicas
}

// ReadStatus reads one service's state. The journal is read first and an
// unreachable router is reported in the result, so the release and the
// instances show when either is down; an unreachable platform fails.
func ReadStatus(ctx context.Context, deps Deps, o StatusOptions) (Status, error) {
	spec := o.Spec.withDefaults()
	st := Status{Service: spec.Name, Router: RouterStatus{Shares: map[string]float64{}}}
	var evs []Event
	if j := deps.Journal; j != nil {
		recs, err := j.Releases(ctx, spec.Name, 20)
		if err == nil && len(recs) > 0 {
			st.Release = &recs[0]
			if v, _, err := RollbackTo(spec.Name, recs, ""); err == nil {
				st.RollbackTo = v
			}
			evs, _ = j.Events(ctx, recs[0].ID)
			if !recs[0].State.Finished() {
				st.Analysis = currentAnalysis(evs, recs[0].Step)
			}
		}
		if l, ok, err := j.Active(ctx, spec.Name); err == nil && ok {
			st.Lease = &LeaseStatus{Lease: l, Live: l.Live(o.Now, o.Host, o.Alive)}
		}
	}
	if deps.Platform == nil || deps.Router == nil {
		return st, nil // the journal's part only (the caller could not connect)
	}
	insts, err := deps.Platform.Instances(ctx, spec.Name)
	if err != nil {
		return st, err
	}
	table, stats, rerr := deps.Router.State(ctx)
	if rerr != nil {
		st.Router.Error = rerr.Error()
	}
	st.Router.Table, st.Router.Stats = table, stats
	for v := range table.Weights() {
		st.Router.Shares[v] = table.Share(v)
	}
	inFlight := map[string]int64{}
	for _, b := range stats.Backends {
		inFlight[b.ID] = b.InFlight
	}
	byID := map[string]Backend{}
	for _, b := range table.Backends {
		byID[b.ID] = b
	}
	for _, in := range insts {
		is := InstanceStatus{Instance: in, InFlight: inFlight[in.ID]}
		if b, ok := byID[in.ID]; ok {
			is.InRouter, is.Weight = true, b.Weight
		}
		switch {
		case o.Probe && in.State == StateRunning:
			if is.Health, err = deps.Platform.Health(ctx, in.ID, spec.Health); err != nil {
				is.Health = Health{Status: HealthUnknown, Detail: err.Error()}
			}
		case in.State != StateRunning:
			is.Health = Health{Status: HealthCrashed, Detail: describeStopped(in)}
		default:
			is.Health = Health{Status: HealthUnknown}
		}
		st.Instances = append(st.Instances, is)
	}
	sort.Slice(st.Instances, func(i, j int) bool {
		a, b := st.Instances[i], st.Instances[j]
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Name < b.Name
	})
	st.Warnings = tableWarnings(table, st.Instances)
	if g, ok := WaitingGate(evs); ok && st.Release != nil && st.Release.State == ReleaseWaiting {
		st.Gate = &g
	}
	st.Next = nextCommand(spec, st, evs)
	if rerr == nil {
		st.RollbackFirst = RollbackFirst(spec, table, st.RollbackTo.Version)
	}
	return st, nil
}

// currentAnalysis is the latest analysis figures journaled at step, unless
// the step ended since.
func currentAnalysis(evs []Event, step int) *AnalysisResult {
	var cur *AnalysisResult
	for _, ev := range evs {
		switch {
		case ev.Step != step:
		case ev.Analysis != nil:
			cur = ev.Analysis
		case ev.Kind == EventStepDone, ev.Kind == EventStepStarted:
			cur = nil
		}
	}
	return cur
}

// tableWarnings are the table's disagreements with the platform: traffic
// sent to an address an instance no longer listens on, backends with no
// instance.
func tableWarnings(t RouteTable, insts []InstanceStatus) []string {
	var out, strays []string
	for _, b := range t.Backends {
		found := false
		for _, in := range insts {
			if in.ID != b.ID {
				continue
			}
			found = true
			if in.Addr != "" && in.Addr != b.Addr && b.Weight > 0 {
				out = append(out, fmt.Sprintf("the router sends %s's traffic to %s, but it now listens on %s (Docker restarted it); the router holds it out, so its share goes to the others",
					in.Name, b.Addr, in.Addr))
			}
		}
		if !found {
			strays = append(strays, b.ID)
		}
	}
	if len(strays) > 0 {
		out = append(out, "the router routes to backends with no instance: "+strings.Join(strays, ", "))
	}
	return out
}

// nextCommand says what the next command does to the latest release: at
// a gate, what an approve passes and what follows, or, when a serving new
// instance died meanwhile, that the approve will apply the failure policy
// instead (the release judges what happened while nobody watched).
func nextCommand(spec ServiceSpec, st Status, evs []Event) string {
	r := st.Release
	if r == nil || r.Kind != KindDeploy || r.State.Finished() {
		return ""
	}
	var broken []string
	for _, in := range st.Instances {
		if in.Version == r.To.Version && in.Weight > 0 && in.Health.Status != HealthHealthy && in.Health.Status != HealthUnknown {
			broken = append(broken, fmt.Sprintf("%s is %s (%s)", in.Name, in.Health.Status, in.Health.Detail))
		}
	}
	cmd := "`cutover deploy " + spec.Name + " " + r.To.Version + "` resumes it"
	if st.Gate != nil {
		cmd = fmt.Sprintf("`cutover approve %s` approves step %d (%s)", spec.Name, st.Gate.Step+1, st.Gate.Gate.Key)
	}
	if len(broken) > 0 {
		action := spec.OnFailure.AfterTraffic
		what := "pauses the release for an operator"
		if action == FailRollback {
			what = "rolls back to " + orNothing(r.Stable().Version)
		}
		return fmt.Sprintf("%s only after judging the new instances: %s; so it %s (on_failure.after_traffic: %s)",
			cmd, strings.Join(broken, ", "), what, action)
	}
	if st.Gate == nil {
		return cmd
	}
	return cmd + ", then: " + stepsUntilGate(evs, st.Gate.Step)
}

// stepsUntilGate lists the journaled plan's steps after step up to the
// next gate (or the end).
func stepsUntilGate(evs []Event, step int) string {
	var lines []string
	for _, ev := range evs {
		if ev.Kind == EventPlanned || ev.Kind == EventPromoted {
			lines = ev.Plan
		}
	}
	var out []string
	for i := step + 1; i < len(lines); i++ {
		out = append(out, lines[i])
		if strings.Contains(lines[i], "wait for approval") || strings.Contains(lines[i], "analysis ") || strings.Contains(lines[i], "pause ") {
			return strings.Join(out, "; ") + " (and waits there)"
		}
	}
	if len(out) == 0 {
		return "the release ends"
	}
	return strings.Join(out, "; ") + "; done"
}

// RollbackFirst says what a rollback to stable does first, from the
// router's table, and how long that takes: one table swap when stable
// instances serve, a swap to warm ones after a probe, or, when none of
// stable is left (late in a rolling release, after blue was retired), a
// launch that must be healthy before any traffic moves. After it, the
// other instances are always drained and removed.
func RollbackFirst(spec ServiceSpec, t RouteTable, stable string) string {
	spec = spec.withDefaults()
	if stable == "" {
		return "first deploy: the table empties at once (one router write)"
	}
	var serving, warm int
	for _, b := range t.Backends {
		switch {
		case b.Version == stable && b.Weight > 0:
			serving++
		case b.Version == stable:
			warm++
		}
	}
	switch {
	case serving > 0:
		return fmt.Sprintf("one table swap to the %d serving × %s, in milliseconds", serving, stable)
	case warm > 0:
		return fmt.Sprintf("one table swap to the %d × %s kept warm, once they answer a probe (at most %s)", warm, stable, fmtDuration(spec.Health.Timeout))
	}
	return fmt.Sprintf("no instance of %s serves any more: %d × %s are launched and must pass health first (up to start_timeout %s), the traffic staying where it is until then; then one table swap",
		stable, spec.Replicas, stable, fmtDuration(spec.StartTimeout))
}

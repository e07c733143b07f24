package engine

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// StepKind names one of the plan primitives.
type StepKind string

// Step kinds.
const (
	StepLaunch StepKind = "launch" // launch instances of a version and wait until healthy
	StepVerify StepKind = "verify" // probe new instances directly (blue/green)
	StepShift  StepKind = "shift"  // apply traffic weights
	StepGate   StepKind = "gate"   // approval, timed pause or analysis
	StepRetire StepKind = "retire" // drain, stop and remove instances of a version
)

// Full is 100% in basis points: table weights are split per version from it.
const Full = 10000

// VersionWeight is a version's share of traffic in basis points (1/100 of
// a percent). Keep, when not negative, is how many of the version's serving
// instances stay in rotation; the rest go to weight 0 (rolling batches).
type VersionWeight struct {
	Version string `json:"version"`
	BP      int    `json:"bp"`
	Keep    int    `json:"keep"`
	Out     int    `json:"out,omitempty"` // instances planned out of rotation, for the description
}

// Step is one primitive of a plan.
type Step struct {
	Kind    StepKind        `json:"kind"`
	Version string          `json:"version,omitempty"`
	Count   int             `json:"count,omitempty"` // launch: to start; retire: to stop
	Total   int             `json:"total"`           // launch: Version's healthy instances after; retire: left after
	Weights []VersionWeight `json:"weights,omitempty"`
	Gate    Gate            `json:"gate,omitzero"`
	Smoke   string          `json:"smoke,omitempty"` // verify: path to GET on each instance
	Note    string          `json:"note,omitempty"`  // why the step is there, printed in parentheses
	// Done marks a step the actual state already satisfies (a resumed
	// release) or one a promote skipped: Run passes over it.
	Done bool `json:"done,omitempty"`
}

// String describes the step as `cutover plan` prints it.
func (s Step) String() string {
	var d string
	switch s.Kind {
	case StepLaunch:
		d = fmt.Sprintf("launch %d × %s and wait until healthy", s.Count, s.Version)
	case StepVerify:
		d = fmt.Sprintf("verify %d × %s directly: health", s.Total, s.Version)
		if s.Smoke != "" {
			d += " and GET " + s.Smoke + " (2xx)"
		}
	case StepShift:
		var parts []string
		var outs []string
		for _, w := range s.Weights {
			parts = append(parts, w.Version+" "+fmtBP(w.BP))
			if w.Out > 0 {
				outs = append(outs, fmt.Sprintf("%d × %s", w.Out, w.Version))
			}
		}
		d = "shift traffic: " + strings.Join(parts, " → ")
		if len(outs) > 0 {
			d += ", " + strings.Join(outs, ", ") + " out of rotation"
		}
	case StepGate:
		d = s.Gate.String()
	case StepRetire:
		d = fmt.Sprintf("drain and retire %d × %s", s.Count, s.Version)
	default:
		d = string(s.Kind)
	}
	if s.Note != "" {
		d += " (" + s.Note + ")"
	}
	return d
}

// Plan is what a release will do, computed from the actual state. Making
// one changes nothing.
type Plan struct {
	Service  string       `json:"service"`
	Strategy StrategyType `json:"strategy"`
	Stable   VersionRef   `json:"stable"` // the version with traffic now; empty for a first deploy
	Others   []VersionRef `json:"others"` // other old versions still present, retired too
	Target   Target       `json:"target"`
	Replicas int          `json:"replicas"`
	Steps    []Step       `json:"steps"`
	// Repair says the target already has all the traffic: the plan only
	// replaces lost instances and refreshes the router's table.
	Repair bool `json:"repair,omitempty"`
}

// From lists the old versions, stable first.
func (p Plan) From() []VersionRef {
	if p.Stable.Version == "" {
		return p.Others
	}
	return append([]VersionRef{p.Stable}, p.Others...)
}

// Lines describes the steps, numbered from 1, with done steps marked.
func (p Plan) Lines() []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		mark := ""
		if s.Done {
			mark = " [done]"
		}
		out[i] = strconv.Itoa(i+1) + ". " + s.String() + mark
	}
	return out
}

// String prints a header and the numbered steps.
func (p Plan) String() string {
	from := "nothing"
	if p.Stable.Version != "" {
		from = p.Stable.Version
	}
	head := fmt.Sprintf("%s: %s → %s (%s, %d replicas)", p.Service, from, p.Target.Version, p.Strategy, p.Replicas)
	if p.Repair {
		head = fmt.Sprintf("%s: repair %s (%d replicas): replace lost instances, refresh the router's table", p.Service, p.Target.Version, p.Replicas)
	}
	return head + "\n" + strings.Join(p.Lines(), "\n") + "\n"
}

// Observed is the actual state of a service, read from the platform and
// the router: what plans and rollbacks are computed from.
type Observed struct {
	Instances []Instance
	// Health holds one probe of each running instance of the target
	// version that has no traffic yet (such instances count only if healthy).
	Health map[string]Health
	Table  RouteTable
	Stats  Stats
}

// Observe reads the service's state. It probes the target version's
// instances that are not serving yet; it changes nothing.
func Observe(ctx context.Context, deps Deps, spec ServiceSpec, targetVersion string) (Observed, error) {
	spec = spec.withDefaults()
	insts, err := deps.Platform.Instances(ctx, spec.Name)
	if err != nil {
		return Observed{}, fmt.Errorf("list instances of %s: %w", spec.Name, err)
	}
	table, stats, err := deps.Router.State(ctx)
	if err != nil {
		return Observed{}, fmt.Errorf("read router state: %w", err)
	}
	obs := Observed{Instances: insts, Table: table, Stats: stats, Health: map[string]Health{}}
	for _, in := range insts {
		if in.Version != targetVersion || in.State != StateRunning || obs.weight(in.ID) > 0 {
			continue
		}
		h, err := deps.Platform.Health(ctx, in.ID, spec.Health)
		if err != nil {
			return Observed{}, fmt.Errorf("probe %s: %w", in.Name, err)
		}
		obs.Health[in.ID] = h
	}
	return obs, nil
}

func (o Observed) weight(id string) int {
	for _, b := range o.Table.Backends {
		if b.ID == id {
			return b.Weight
		}
	}
	return 0
}

// running lists the running instances of version.
func (o Observed) running(version string) []Instance {
	var out []Instance
	for _, in := range o.Instances {
		if in.Version == version && in.State == StateRunning {
			out = append(out, in)
		}
	}
	return out
}

// serving counts the running instances of version with weight in the table.
func (o Observed) serving(version string) int {
	n := 0
	for _, in := range o.running(version) {
		if o.weight(in.ID) > 0 {
			n++
		}
	}
	return n
}

// usable counts the target's instances a plan can count on: serving ones,
// and running ones whose probe was healthy.
func (o Observed) usable(version string) int {
	n := 0
	for _, in := range o.running(version) {
		if o.weight(in.ID) > 0 || o.Health[in.ID].Status == HealthHealthy {
			n++
		}
	}
	return n
}

// share is version's share of the table's weight in basis points.
func (o Observed) share(version string) int {
	total := 0
	for _, b := range o.Table.Backends {
		total += b.Weight
	}
	if total == 0 {
		return 0
	}
	return int(int64(o.Table.Weights()[version]) * Full / int64(total))
}

// oldVersions lists the versions other than target that have instances:
// stable is the one with most weight, or, with no weight on any, the one
// with most instances; others are the rest.
func (o Observed) oldVersions(target string) (stable VersionRef, others []VersionRef) {
	count := map[string]int{}
	image := map[string]string{}
	for _, in := range o.Instances {
		if in.Version == target || in.State == StateGone {
			continue
		}
		count[in.Version]++
		if image[in.Version] == "" {
			image[in.Version] = in.Image
		}
	}
	weights := o.Table.Weights()
	best, bestW, bestN := "", 0, 0
	for v, n := range count {
		w := weights[v]
		better := w > bestW || w == bestW && (n > bestN || n == bestN && v > best)
		if best == "" || better {
			best, bestW, bestN = v, w, n
		}
	}
	var vs []string
	for v := range count {
		if v != best {
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	for _, v := range vs {
		others = append(others, VersionRef{Version: v, Image: image[v]})
	}
	if best != "" {
		stable = VersionRef{Version: best, Image: image[best]}
	}
	return stable, others
}

// count returns how many non-gone instances of version exist.
func (o Observed) count(version string) int {
	n := 0
	for _, in := range o.Instances {
		if in.Version == version && in.State != StateGone {
			n++
		}
	}
	return n
}

// NewPlan observes the service and plans the release to target.
func NewPlan(ctx context.Context, deps Deps, spec ServiceSpec, target Target) (Plan, error) {
	obs, err := Observe(ctx, deps, spec, target.Version)
	if err != nil {
		return Plan{}, err
	}
	return PlanRelease(spec, target, obs)
}

// tableStale reports a router table that routes to an instance that is
// gone, not running, or now listening on another address.
func (o Observed) tableStale() bool {
	byID := make(map[string]Instance, len(o.Instances))
	for _, in := range o.Instances {
		byID[in.ID] = in
	}
	for _, b := range o.Table.Backends {
		in, ok := byID[b.ID]
		if !ok || in.State != StateRunning || (in.Addr != "" && in.Addr != b.Addr) {
			return true
		}
	}
	return false
}

// PlanRelease turns the observed state and the target into steps. Steps
// the state already satisfies are kept, marked Done, so a resumed release
// shows where it picks up.
func PlanRelease(spec ServiceSpec, target Target, obs Observed) (Plan, error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return Plan{}, err
	}
	if target.Version == "" {
		return Plan{}, fmt.Errorf("%s: target has no version", spec.Name)
	}
	stable, others := obs.oldVersions(target.Version)
	p := Plan{Service: spec.Name, Strategy: spec.Strategy.Type, Stable: stable, Others: others,
		Target: target, Replicas: spec.Replicas}
	have := obs.usable(target.Version)
	share := obs.share(target.Version)
	if len(p.From()) == 0 && share == Full && have >= spec.Replicas && !obs.tableStale() {
		return Plan{}, fmt.Errorf("%s already runs %s on all %d instances", spec.Name, target.Version, have)
	}
	p.Repair = len(p.From()) == 0 && share == Full
	b := planner{spec: spec, obs: obs, plan: &p, have: have, share: share}
	served := false
	for _, b := range obs.Table.Backends {
		served = served || b.Weight > 0
	}
	switch {
	case stable.Version == "" || !served:
		// Nothing serves traffic: there is nothing to compare with or keep
		// warm, so every strategy is launch, switch, clean up.
		b.finalize()
	case spec.Strategy.Type == Rolling:
		if err := b.rolling(); err != nil {
			return Plan{}, err
		}
	case spec.Strategy.Type == BlueGreen:
		b.blueGreen()
	case spec.Strategy.Type == Canary:
		b.canary()
	}
	return p, nil
}

// planner accumulates steps while tracking the planned state.
type planner struct {
	spec  ServiceSpec
	obs   Observed
	plan  *Plan
	have  int // usable target instances so far
	share int // target share so far, basis points
}

func (b *planner) add(s Step) { b.plan.Steps = append(b.plan.Steps, s) }

func (b *planner) target() string { return b.plan.Target.Version }

// launchTo adds a launch step bringing the target to n usable instances.
func (b *planner) launchTo(n int) {
	if b.have >= n {
		return
	}
	b.add(Step{Kind: StepLaunch, Version: b.target(), Count: n - b.have, Total: n})
	b.have = n
}

// shiftTo adds a shift giving the target bp and the stable version the rest.
func (b *planner) shiftTo(bp int, done bool) {
	var ws []VersionWeight
	if st := b.plan.Stable.Version; st != "" {
		ws = append(ws, VersionWeight{Version: st, BP: Full - bp, Keep: -1})
	}
	ws = append(ws, VersionWeight{Version: b.target(), BP: bp, Keep: -1})
	b.add(Step{Kind: StepShift, Weights: ws, Done: done})
	b.share = bp
}

// retireOld adds a retire step for every old version.
func (b *planner) retireOld() {
	for _, v := range b.plan.From() {
		if n := b.obs.count(v.Version); n > 0 {
			b.add(Step{Kind: StepRetire, Version: v.Version, Count: n, Total: 0})
		}
	}
}

// finalize launches the target to full size, gives it all traffic and
// retires everything else. Re-releasing the version that already has all
// the traffic repairs the service: the instances it launches to make up
// for lost ones join the table, and backends that are gone or moved leave it.
func (b *planner) finalize() {
	before := b.have
	b.launchTo(b.spec.Replicas)
	if b.share < Full || b.have > before || b.obs.tableStale() {
		b.shiftTo(Full, false)
	}
	b.retireOld()
}

func (b *planner) blueGreen() {
	bg := b.spec.Strategy.BlueGreen
	switched := b.share == Full
	if !switched {
		b.launchTo(b.spec.Replicas)
		b.add(Step{Kind: StepVerify, Version: b.target(), Total: b.spec.Replicas, Smoke: bg.SmokePath})
		if bg.Approval {
			b.add(Step{Kind: StepGate, Gate: Gate{Kind: GateApproval, Key: "before the switch"}, Note: "before the switch"})
		}
		b.shiftTo(Full, false)
	}
	if bg.RollbackWindow > 0 {
		b.add(Step{Kind: StepGate, Gate: Gate{Kind: GatePause, Pause: bg.RollbackWindow, Key: "rollback window"},
			Note: "rollback window: " + b.plan.Stable.Version + " kept warm"})
	}
	b.retireOld()
}

func (b *planner) canary() {
	c := b.spec.Strategy.Canary
	start := b.share // steps below the share the target already has are done
	b.launchTo(c.Instances)
	level := start
	for i, cs := range c.Steps {
		w := cs.Weight
		if w == NoShift {
			w = level
		} else {
			bp := w * Full / 100
			switch {
			case bp < start:
				b.add(Step{Kind: StepShift, Weights: b.weightsFor(bp), Done: true})
			case bp == start:
				b.add(Step{Kind: StepShift, Weights: b.weightsFor(bp), Done: true, Note: "current share"})
			default:
				need := max(c.Instances, (b.spec.Replicas*cs.Weight+99)/100)
				b.launchTo(min(need, max(b.spec.Replicas, c.Instances)))
				b.shiftTo(bp, false)
			}
			w = bp
		}
		level = w
		if cs.Gate.Kind != "" {
			g := cs.Gate
			g.Key = fmt.Sprintf("canary step %d", i+1)
			b.add(Step{Kind: StepGate, Gate: g, Done: level < start})
		}
	}
	b.share = max(level, start)
	b.finalize()
}

func (b *planner) weightsFor(bp int) []VersionWeight {
	return []VersionWeight{
		{Version: b.plan.Stable.Version, BP: Full - bp, Keep: -1},
		{Version: b.target(), BP: bp, Keep: -1},
	}
}

// rolling replaces old instances batch by batch. Leftover versions are
// retired before the stable one.
func (b *planner) rolling() error {
	r := b.spec.Strategy.Rolling
	replicas := b.spec.Replicas
	type pool struct {
		version string
		n       int // instances left
		serving int // of which in rotation
	}
	var pools []*pool
	for _, v := range append(append([]VersionRef(nil), b.plan.Others...), b.plan.Stable) {
		n := b.obs.count(v.Version)
		pools = append(pools, &pool{version: v.Version, n: n, serving: b.obs.serving(v.Version)})
	}
	oldLeft := func() int {
		n := 0
		for _, p := range pools {
			n += p.n
		}
		return n
	}
	servingLeft := func() int {
		n := 0
		for _, p := range pools {
			n += p.serving
		}
		return n
	}
	for batch := 0; oldLeft() > 0 || b.have < replicas; batch++ {
		if batch > 0 && r.Pause > 0 {
			b.add(Step{Kind: StepGate, Gate: Gate{Kind: GatePause, Pause: r.Pause, Key: fmt.Sprintf("before batch %d", batch+1)}, Note: "between batches"})
		}
		old := oldLeft()
		l := min(replicas-b.have, r.BatchSize, max(0, replicas+r.MaxSurge-(b.have+old)))
		if l > 0 {
			b.launchTo(b.have + l)
		}
		retire := min(old, r.BatchSize, max(0, b.have+old-(replicas-r.MaxUnavailable)))
		if l <= 0 && retire <= 0 {
			return fmt.Errorf("%s: rolling settings cannot make progress: max surge and max unavailable leave no room", b.spec.Name)
		}
		// Take `retire` instances out: those out of rotation first (free),
		// then serving ones, leftover versions before stable.
		outs := map[string]int{}
		taken := map[string]int{}
		left := retire
		for _, p := range pools {
			free := min(left, p.n-p.serving)
			outs[p.version] += free
			left -= free
		}
		for _, p := range pools {
			take := min(left, p.serving)
			outs[p.version] += take
			taken[p.version] = take
			p.serving -= take
			left -= take
		}
		total := b.have + servingLeft()
		var ws []VersionWeight
		used := 0
		for i := len(pools) - 1; i >= 0; i-- { // stable first in the description
			p := pools[i]
			bp := 0
			if total > 0 {
				bp = p.serving * Full / total
			}
			used += bp
			ws = append(ws, VersionWeight{Version: p.version, BP: bp, Keep: p.serving, Out: taken[p.version]})
		}
		ws = append(ws, VersionWeight{Version: b.target(), BP: Full - used, Keep: -1})
		b.add(Step{Kind: StepShift, Weights: dropEmpty(ws)})
		b.share = Full - used
		for i := len(pools) - 1; i >= 0; i-- {
			p := pools[i]
			if k := outs[p.version]; k > 0 {
				b.add(Step{Kind: StepRetire, Version: p.version, Count: k, Total: p.n - k})
				p.n -= k
			}
		}
	}
	return nil
}

// dropEmpty removes old versions that have neither weight nor instances
// to take out, so the description stays short.
func dropEmpty(ws []VersionWeight) []VersionWeight {
	var out []VersionWeight
	for _, w := range ws {
		if w.BP == 0 && w.Keep == 0 && w.Out <= 0 && w.Version != ws[len(ws)-1].Version {
			continue
		}
		out = append(out, w)
	}
	return out
}

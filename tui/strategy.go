package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// strategyScreen edits the release's strategy before planning: the preset
// comes from the config (Backend.Spec); the edits apply to this release only.
type strategyScreen struct {
	env     *env
	service string
	image   ImageRow
	spec    engine.ServiceSpec
	loaded  bool
	err     string
	field   int
	w, h    int
}

var strategies = []engine.StrategyType{engine.Rolling, engine.BlueGreen, engine.Canary}

func newStrategy(e *env, service string, image ImageRow) strategyScreen {
	return strategyScreen{env: e, service: service, image: image}
}

// load reads the service's settings to preset the editor.
func (s strategyScreen) load() tea.Cmd { return loadSpec(s.env.ctx, s.env.b, s.service) }

// SetSize sets the area the screen draws in.
func (s *strategyScreen) SetSize(w, h int) { s.w, s.h = w, h }

// setSpec presets the editor from the config.
func (s *strategyScreen) setSpec(spec engine.ServiceSpec) {
	s.spec, s.loaded = spec, true
	if s.spec.Strategy.Type == "" {
		s.spec.Strategy.Type = engine.Rolling
	}
	// Own the canary steps: edits must not reach the caller's slice.
	s.spec.Strategy.Canary.Steps = append([]engine.CanaryStep(nil), spec.Strategy.Canary.Steps...)
}

// field is one editable setting.
type field struct {
	label string
	value string
	step  int // canary step index, -1 otherwise
	adj   func(spec *engine.ServiceSpec, dir int)
}

func clampInt(p *int, dir, lo, hi int) { *p = max(lo, min(hi, *p+dir)) }

func clampDur(p *time.Duration, dir int, unit time.Duration) {
	*p = max(0, *p+time.Duration(dir)*unit)
}

func durText(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

func (s strategyScreen) fields() []field {
	sp := &s.spec.Strategy
	switch sp.Type {
	case engine.Rolling:
		r := sp.Rolling
		return []field{
			{"batch size", fmt.Sprint(max(1, r.BatchSize)), -1, func(x *engine.ServiceSpec, d int) {
				clampInt(&x.Strategy.Rolling.BatchSize, d, 1, max(1, x.Replicas))
			}},
			{"max surge", fmt.Sprint(r.MaxSurge), -1, func(x *engine.ServiceSpec, d int) { clampInt(&x.Strategy.Rolling.MaxSurge, d, 0, 100) }},
			{"max unavailable", fmt.Sprint(r.MaxUnavailable), -1, func(x *engine.ServiceSpec, d int) {
				clampInt(&x.Strategy.Rolling.MaxUnavailable, d, 0, max(0, x.Replicas-1))
			}},
			{"pause between batches", durText(r.Pause), -1, func(x *engine.ServiceSpec, d int) { clampDur(&x.Strategy.Rolling.Pause, d, 5*time.Second) }},
		}
	case engine.BlueGreen:
		g := sp.BlueGreen
		yes := "no"
		if g.Approval {
			yes = "yes"
		}
		smoke := g.SmokePath
		if smoke == "" {
			smoke = "none"
		}
		return []field{
			{"approval before the switch", yes, -1, func(x *engine.ServiceSpec, d int) { x.Strategy.BlueGreen.Approval = !x.Strategy.BlueGreen.Approval }},
			{"rollback window (blue kept warm)", durText(g.RollbackWindow), -1, func(x *engine.ServiceSpec, d int) {
				clampDur(&x.Strategy.BlueGreen.RollbackWindow, d, time.Minute)
			}},
			{"smoke check (from config)", smoke, -1, nil},
		}
	}
	c := sp.Canary
	out := []field{{"canary instances", fmt.Sprint(max(1, c.Instances)), -1, func(x *engine.ServiceSpec, d int) {
		clampInt(&x.Strategy.Canary.Instances, d, 1, max(1, x.Replicas))
	}}}
	for i, st := range c.Steps {
		w := "gate only"
		if st.Weight != engine.NoShift {
			w = fmt.Sprintf("%d%%", st.Weight)
		}
		out = append(out, field{fmt.Sprintf("step %d weight", i+1), w, i, func(x *engine.ServiceSpec, d int) {
			p := &x.Strategy.Canary.Steps[i].Weight
			if *p == engine.NoShift {
				*p = 0
			}
			clampInt(p, 5*d, 0, 100)
		}})
		out = append(out, field{fmt.Sprintf("step %d gate", i+1), gateText(st.Gate), i, func(x *engine.ServiceSpec, d int) {
			g := &x.Strategy.Canary.Steps[i].Gate
			switch g.Kind {
			case engine.GatePause:
				clampDur(&g.Pause, d, 30*time.Second)
				g.Pause = max(g.Pause, 30*time.Second)
			case engine.GateAnalysis:
				clampDur(&g.Analysis.Window, d, 30*time.Second)
				g.Analysis.Window = max(g.Analysis.Window, 30*time.Second)
			}
		}})
	}
	return out
}

func gateText(g engine.Gate) string {
	if g.Kind == "" {
		return "none"
	}
	return g.String()
}

// nextGate cycles a gate through none → approval → pause → analysis.
func nextGate(g engine.Gate) engine.Gate {
	switch g.Kind {
	case "":
		return engine.Gate{Kind: engine.GateApproval}
	case engine.GateApproval:
		return engine.Gate{Kind: engine.GatePause, Pause: time.Minute}
	case engine.GatePause:
		a := g.Analysis
		if a.Window == 0 {
			a = engine.AnalysisSpec{Window: time.Minute, MaxErrorRate: 0.01, MinRequests: 50}
		}
		return engine.Gate{Kind: engine.GateAnalysis, Analysis: a}
	}
	return engine.Gate{}
}

// canaryStep is the step the cursor is on, -1 if none.
func (s strategyScreen) canaryStep() int {
	if s.spec.Strategy.Type != engine.Canary {
		return -1
	}
	f := s.fields()
	if s.field < 0 || s.field >= len(f) {
		return -1
	}
	return f[s.field].step
}

func (s *strategyScreen) setType(t engine.StrategyType) {
	s.spec.Strategy.Type = t
	s.field = 0
}

// Update takes the service's settings and edits them.
func (s strategyScreen) Update(msg tea.Msg) (strategyScreen, tea.Cmd) {
	if msg, ok := msg.(specMsg); ok && msg.service == s.service {
		switch {
		case msg.err != nil:
			s.err = advise("read settings", msg.err)
		case !s.loaded:
			s.setSpec(msg.spec)
		}
		return s, nil
	}
	k, ok := msg.(tea.KeyPressMsg)
	if !ok || !s.loaded {
		return s, nil
	}
	km := s.env.keys
	idx := 0
	for i, t := range strategies {
		if t == s.spec.Strategy.Type {
			idx = i
		}
	}
	fs := s.fields()
	steps := &s.spec.Strategy.Canary.Steps
	switch {
	case key.Matches(k, km.PrevStrategy):
		s.setType(strategies[(idx+len(strategies)-1)%len(strategies)])
	case key.Matches(k, km.NextStrategy):
		s.setType(strategies[(idx+1)%len(strategies)])
	case key.Matches(k, km.Rolling):
		s.setType(engine.Rolling)
	case key.Matches(k, km.BlueGreen):
		s.setType(engine.BlueGreen)
	case key.Matches(k, km.Canary):
		s.setType(engine.Canary)
	case key.Matches(k, km.Up):
		s.field = max(0, s.field-1)
	case key.Matches(k, km.Down):
		s.field = min(len(fs)-1, s.field+1)
	case key.Matches(k, km.Inc), key.Matches(k, km.Dec):
		dir := 1
		if key.Matches(k, km.Dec) {
			dir = -1
		}
		if s.field < len(fs) && fs[s.field].adj != nil {
			fs[s.field].adj(&s.spec, dir)
		}
	case key.Matches(k, km.AddStep):
		i := s.canaryStep()
		w := 100
		if n := len(*steps); n > 0 {
			w = min(100, (*steps)[n-1].Weight+25)
		}
		st := engine.CanaryStep{Weight: w, Gate: engine.Gate{Kind: engine.GateApproval}}
		at := len(*steps)
		if i >= 0 {
			at = i + 1
		}
		*steps = append((*steps)[:at], append([]engine.CanaryStep{st}, (*steps)[at:]...)...)
		s.field = 1 + 2*at
	case key.Matches(k, km.DelStep):
		if i := s.canaryStep(); i >= 0 {
			*steps = append((*steps)[:i], (*steps)[i+1:]...)
			s.field = min(s.field, len(s.fields())-1)
		}
	case key.Matches(k, km.GateKind):
		if i := s.canaryStep(); i >= 0 {
			(*steps)[i].Gate = nextGate((*steps)[i].Gate)
		}
	}
	return s, nil
}

// intent is what a key asks beyond the editor: enter plans the release.
func (s strategyScreen) intent(k tea.KeyPressMsg) intent {
	if key.Matches(k, s.env.keys.ToPlan) {
		return openPlan{s.service, s.image, s.spec}
	}
	return nil
}

// enable turns on the editing keys once the settings are read, and those
// of a canary step when the cursor is on one.
func (s *strategyScreen) enable(k *KeyMap) {
	canary := s.spec.Strategy.Type == engine.Canary
	onStep := s.canaryStep() >= 0
	for _, b := range []*key.Binding{&k.Up, &k.Down, &k.PrevStrategy, &k.NextStrategy, &k.Rolling, &k.BlueGreen, &k.Canary, &k.Inc, &k.Dec, &k.ToPlan} {
		b.SetEnabled(s.loaded)
	}
	k.AddStep.SetEnabled(s.loaded && canary)
	k.DelStep.SetEnabled(s.loaded && onStep)
	k.GateKind.SetEnabled(s.loaded && onStep)
}

// subject is the service being released.
func (s *strategyScreen) subject() string { return s.service }

func (s *strategyScreen) update(msg tea.Msg) (cmd tea.Cmd) {
	*s, cmd = s.Update(msg)
	return cmd
}

// View draws the strategy choice and its settings.
func (s strategyScreen) View() string {
	st := s.env.styles
	w := max(40, s.w)
	out := []string{st.Title.Render(s.service) + " → " + imageName(s.image) + st.Subtle.Render(" · strategy")}
	if s.err != "" {
		return strings.Join(append(out, st.Error.Render("× "+s.err)), "\n")
	}
	if !s.loaded {
		return strings.Join(append(out, st.Subtle.Render("reading the service's settings…")), "\n")
	}
	var tabs []string
	for i, t := range strategies {
		label := fmt.Sprintf("%d %s", i+1, strategyName(t))
		if t == s.spec.Strategy.Type {
			tabs = append(tabs, st.Selected.Render("["+label+"]"))
		} else {
			tabs = append(tabs, st.Subtle.Render(" "+label+" "))
		}
	}
	out = append(out, "", cut(strings.Join(tabs, "  ")+st.Subtle.Render("   ←/→ or 1 2 3"), w), "")
	fs := s.fields()
	room := max(1, s.h-len(out)-2)
	start := max(0, min(s.field-room/2, len(fs)-room))
	for i := start; i < len(fs) && i < start+room; i++ {
		f := fs[i]
		line := "  " + fit(f.label, 34) + " " + f.value
		if f.adj == nil {
			line = st.Subtle.Render(line)
		}
		if i == s.field {
			line = st.Selected.Render(cut("▸ "+fit(f.label, 34)+" "+f.value, w))
		}
		out = append(out, cut(line, w))
	}
	hint := "+/- change"
	if s.spec.Strategy.Type == engine.Canary {
		hint += " · n add step · x delete step · g gate kind"
	}
	out = append(out, "", st.Subtle.Render(cut(hint+" · enter plan", w)))
	return strings.Join(out, "\n")
}

func strategyName(t engine.StrategyType) string {
	if t == engine.BlueGreen {
		return "blue/green"
	}
	return string(t)
}

// imageName is the tag an operator knows an image by.
func imageName(r ImageRow) string {
	if len(r.Tags) > 0 {
		return r.Tags[0]
	}
	if r.Ref != "" {
		return r.Ref
	}
	return engine.ShortDigest(r.Digest)
}

// specMsg is the service's configured settings.
type specMsg struct {
	service string
	spec    engine.ServiceSpec
	err     error
}

func loadSpec(ctx context.Context, b Backend, service string) tea.Cmd {
	return safe(func() tea.Msg {
		s, err := b.Spec(ctx, service)
		return specMsg{service, s, err}
	}, func(err error) tea.Msg { return specMsg{service: service, err: err} })
}

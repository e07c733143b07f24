package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// planScreen shows what the engine will do and starts it on enter: the
// "button" of continuous delivery.
type planScreen struct {
	env     *env
	service string
	image   ImageRow
	spec    engine.ServiceSpec
	request int // which request this screen waits for
	plan    engine.Plan
	loaded  bool
	err     string
	offset  int
	w, h    int
}

// newPlan is the plan screen of releasing image with spec, waiting for
// the answer to request number request.
func newPlan(e *env, service string, image ImageRow, spec engine.ServiceSpec, request int) planScreen {
	return planScreen{env: e, service: service, image: image, spec: cloneSpec(spec), request: request}
}

// load asks the backend for the plan.
func (s planScreen) load() tea.Cmd {
	return makePlan(s.env.ctx, s.env.b, s.service, s.request, s.image.Ref, s.spec)
}

// cloneSpec copies what the strategy editor changes in place, so a plan (and
// the command computing it) never shares it with the editor.
func cloneSpec(spec engine.ServiceSpec) engine.ServiceSpec {
	spec.Strategy.Canary.Steps = slices.Clone(spec.Strategy.Canary.Steps)
	return spec
}

// SetSize sets the area the screen draws in.
func (s *planScreen) SetSize(w, h int) { s.w, s.h = w, h }

// Update takes the plan and scrolls long ones.
func (s planScreen) Update(msg tea.Msg) (planScreen, tea.Cmd) {
	if msg, ok := msg.(planMsg); ok && msg.service == s.service && msg.load == s.request {
		if msg.err != nil {
			s.err = advise("plan", msg.err)
		} else {
			s.plan, s.loaded = msg.plan, true
		}
		return s, nil
	}
	if k, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(k, s.env.keys.Up):
			s.offset = max(0, s.offset-1)
		case key.Matches(k, s.env.keys.Down):
			s.offset = min(max(0, len(s.plan.Steps)-1), s.offset+1)
		}
	}
	return s, nil
}

// intent is what a key asks beyond the screen: enter starts the release.
func (s planScreen) intent(k tea.KeyPressMsg) intent {
	if key.Matches(k, s.env.keys.Start) {
		return start{s.service, s.image.Ref, s.spec}
	}
	return nil
}

// enable turns on scrolling, and the start of a plan with steps unless a
// release already runs in this console.
func (s *planScreen) enable(k *KeyMap) {
	k.Up.SetEnabled(true)
	k.Down.SetEnabled(true)
	k.Start.SetEnabled(s.loaded && s.err == "" && len(s.plan.Steps) > 0 && !s.env.here.running)
}

// subject is the service being released.
func (s *planScreen) subject() string { return s.service }

// busy says the plan is being computed.
func (s *planScreen) busy() string {
	if !s.loaded && s.err == "" {
		return "planning"
	}
	return ""
}

func (s *planScreen) update(msg tea.Msg) (cmd tea.Cmd) {
	*s, cmd = s.Update(msg)
	return cmd
}

// View draws from → to, the strategy and the numbered steps.
func (s planScreen) View() string {
	st := s.env.styles
	w := max(40, s.w)
	out := []string{st.Title.Render(s.service) + st.Subtle.Render(" · plan")}
	if s.err != "" {
		return strings.Join(append(out, st.Error.Render("× "+s.err), "", "esc: back to the strategy to change it"), "\n")
	}
	if !s.loaded {
		return strings.Join(append(out, st.Subtle.Render("planning from the actual state…")), "\n")
	}
	p := s.plan
	from := versions(p.From())
	out = append(out,
		cut(st.Stable.Render(from)+" → "+st.Canary.Render(p.Target.Version)+
			st.Subtle.Render(fmt.Sprintf("  %s · %d replicas · image %s", strategyName(p.Strategy), p.Replicas, p.Target.Image)), w),
		"")
	if len(p.Steps) == 0 {
		out = append(out, "Nothing to do: "+p.Target.Version+" already runs as configured.")
	}
	room := max(1, s.h-len(out)-2)
	start := min(s.offset, max(0, len(p.Steps)-room))
	for i := start; i < len(p.Steps) && i < start+room; i++ {
		stp := p.Steps[i]
		glyph := "○"
		switch stp.Kind {
		case engine.StepGate:
			glyph = "⚠"
		case engine.StepShift:
			glyph = "→"
		case engine.StepLaunch:
			glyph = "↑"
		case engine.StepRetire:
			glyph = "↓"
		case engine.StepVerify:
			glyph = "✓"
		}
		line := fmt.Sprintf("  %s %2d. %s", glyph, i+1, stp.String())
		if stp.Kind == engine.StepGate {
			line += st.Subtle.Render(" — waits for " + gateWaits(stp.Gate))
		}
		if stp.Done {
			line = st.Subtle.Render(line + " (already done)")
		}
		out = append(out, cut(line, w))
	}
	out = append(out, "", st.Key.Render("enter")+" start the release · "+st.Key.Render("esc")+" change the strategy")
	return strings.Join(out, "\n")
}

// gateWaits says in words what a gate waits for.
func gateWaits(g engine.Gate) string {
	switch g.Kind {
	case engine.GateApproval:
		return "an operator to press a (or P to promote)"
	case engine.GatePause:
		return "time to pass"
	case engine.GateAnalysis:
		if len(g.Analysis.Queries) > 0 {
			return "the router's figures and the queries to stay within limits"
		}
		return "the router's figures to stay within limits"
	case engine.GateWebhook:
		return g.Webhook.URL + " to answer 2xx"
	}
	return string(g.Kind)
}

// planMsg is the plan asked for by one plan screen (load), so an
// answer for an earlier spec is not taken for the current one.
type planMsg struct {
	service string
	load    int
	plan    engine.Plan
	err     error
}

func makePlan(ctx context.Context, b Backend, service string, load int, image string, spec engine.ServiceSpec) tea.Cmd {
	spec = cloneSpec(spec)
	return safe(func() tea.Msg {
		p, err := b.Plan(ctx, service, image, spec)
		return planMsg{service, load, p, err}
	}, func(err error) tea.Msg { return planMsg{service: service, load: load, err: err} })
}

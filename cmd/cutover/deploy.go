package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cutover/cutover/engine"
)

// deployFlags are the settings of `cutover deploy`.
type deployFlags struct {
	strategy string
	auto     bool
	detach   bool
	output   string
}

func newDeployCmd() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy SERVICE IMAGE",
		Short: "Release IMAGE to SERVICE in the foreground, one line per event",
		Long: `deploy releases IMAGE (a tag of the service's repository, such as 1.1.0, or a
full reference) to SERVICE with the configured strategy, printing one line per
event (NDJSON with --output json).

Approval gates ask on the terminal: y approves, p pauses, r rolls back. With no
terminal, a plan with approval gates is refused unless --auto approves every
gate (continuous deployment) or --detach stops at the first one, leaving the
release waiting for "cutover approve SERVICE" (continuous delivery: a pipeline
deploys to the gate, a person approves). Ctrl-C stops the release where it
is: "cutover deploy" again resumes it, "cutover rollback" undoes it.

If an interrupted release of the same image exists, deploy resumes it from the
actual state of the service.

Exit codes: 0 succeeded, 1 bad input or unreachable Docker/router (nothing
changed), 2 failed (paused by a failure and left for an operator), 3 rolled
back, 4 detached waiting for approval, 5 aborted by Ctrl-C, 6 taken over by
another writer (such as "cutover rollback" from elsewhere).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeploy(cmd, args[0], args[1], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.strategy, "strategy", "", "rolling, bluegreen or canary (default: the service's configured strategy)")
	fl.BoolVar(&f.auto, "auto", false, "approve every gate without asking (continuous deployment)")
	fl.BoolVar(&f.detach, "detach", false, "stop at the first approval gate (exit 4); \"cutover approve\" continues (continuous delivery)")
	fl.StringVarP(&f.output, "output", "o", "text", "text or json (one JSON event per line)")
	return cmd
}

func runDeploy(cmd *cobra.Command, name, image string, f deployFlags) error {
	if err := checkStrategy(f.strategy); err != nil {
		return err
	}
	if f.auto && f.detach {
		return withCode(exitUsage, errors.New("--auto approves every gate and --detach stops at the first: use one"))
	}
	ctx, s, out, done, err := openRelease(cmd, name, f.output)
	if err != nil {
		return err
	}
	defer done()
	if f.strategy != "" {
		s.spec.Strategy.Type = engine.StrategyType(f.strategy)
	}
	target, err := s.resolveTarget(ctx, image)
	if err != nil {
		return err
	}
	plan, err := engine.NewPlan(ctx, s.deps(), s.spec, target)
	if err != nil {
		return err
	}
	interactive := term.IsTerminal(int(os.Stdin.Fd()))
	if !f.auto && !f.detach && !interactive && hasApproval(plan) {
		return withCode(exitUsage, fmt.Errorf("%s: the plan has approval gates and there is no terminal to ask on; use --auto to approve them, --detach to stop at the first, or the console (cutover)", name))
	}
	opts := engine.Options{Actor: actor(), AutoApprove: f.auto, Detach: f.detach && !f.auto}
	rec, ok, err := s.resumable(ctx, target)
	if err != nil {
		return err
	}
	if ok {
		opts.ID, target = rec.ID, rec.To
		s.resumeAs(rec)
		fmt.Fprintf(cmd.ErrOrStderr(), "resuming release %s from the actual state\n", rec.ID)
	}
	return s.drive(ctx, cmd, target, opts, out, interactive)
}

// openRelease prepares a command that runs a release of service name: an
// event writer for output, a context that Ctrl-C and SIGTERM end, and the
// service connected with its router answering. done releases them.
func openRelease(cmd *cobra.Command, name, output string) (context.Context, *service, *eventWriter, func(), error) {
	return openReleaseWith(cmd, name, output, false)
}

// openReleaseWith is openRelease; fast connects Docker in the background
// (see openServiceWith).
func openReleaseWith(cmd *cobra.Command, name, output string, fast bool) (context.Context, *service, *eventWriter, func(), error) {
	out, err := newEventWriter(cmd.OutOrStdout(), output)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	s, err := openServiceWith(ctx, cmd, name, fast)
	if err != nil {
		stop()
		return nil, nil, nil, nil, err
	}
	if err := s.checkRouter(ctx); err != nil {
		s.Close()
		stop()
		return nil, nil, nil, nil, err
	}
	if err := s.openHooks(cmd.ErrOrStderr(), fast); err != nil {
		s.Close()
		stop()
		return nil, nil, nil, nil, err
	}
	return ctx, s, out, func() { s.Close(); stop() }, nil
}

// drive runs a release of target in the foreground: it prints each event,
// asks at approval gates when it may (interactive, neither auto-approving
// nor detaching), turns Ctrl-C into an abort, and maps the outcome to the
// exit code.
func (s *service) drive(ctx context.Context, cmd *cobra.Command, target engine.Target, opts engine.Options, out *eventWriter, interactive bool) error {
	return s.driveWatching(ctx, cmd, target, opts, out, interactive, nil)
}

// driveWatching is drive that also passes every event to watch (if not nil).
func (s *service) driveWatching(ctx context.Context, cmd *cobra.Command, target engine.Target, opts engine.Options, out *eventWriter, interactive bool, watch func(engine.Event)) error {
	// Nobody can resume a headless run paused by a failure: it ends, exit
	// 2, and stays resumable. On a terminal the operator is asked.
	ask := interactive && !opts.AutoApprove && !opts.Detach
	opts.DetachOnFailure = !ask
	rel, err := engine.New(s.deps(), s.spec, target, opts)
	if err != nil {
		return err
	}
	// Ctrl-C aborts: the release stops where it is, resumable.
	go func() {
		<-ctx.Done()
		_ = rel.Send(engine.CmdAbort)
	}()
	var op *operator
	if ask {
		op = newOperator(rel, os.Stdin, cmd.ErrOrStderr())
	}
	outcome, runErr := follow(ctx, rel, out, func(ev engine.Event) {
		if op != nil {
			op.prompt(ev)
		}
		if watch != nil {
			watch(ev)
		}
	})
	return outcomeError(s.svc.Name, outcome, runErr)
}

// follow runs rel to its end, printing each event and passing it to
// onEvent (if not nil). Cancelling ctx does not stop Run: the caller turns
// it into a command, so the release records where it stopped.
func follow(ctx context.Context, rel *engine.Release, out *eventWriter, onEvent func(engine.Event)) (engine.Outcome, error) {
	events, cancel := rel.Subscribe()
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			out.write(ev)
			if onEvent != nil {
				onEvent(ev)
			}
		}
	}()
	outcome, err := rel.Run(context.WithoutCancel(ctx))
	cancel()
	<-done
	return outcome, err
}

// resumeAs makes s.spec run rec's strategy, so a resume goes on as it began.
func (s *service) resumeAs(rec engine.ReleaseRecord) {
	if rec.Strategy != "" {
		s.spec.Strategy.Type = rec.Strategy
	}
}

// resumable finds an interrupted release of target's version that this
// run should continue (engine.Resumable).
func (s *service) resumable(ctx context.Context, target engine.Target) (engine.ReleaseRecord, bool, error) {
	recs, err := s.journal.Releases(ctx, s.svc.Name, 1)
	if err != nil {
		return engine.ReleaseRecord{}, false, err
	}
	return engine.Resumable(s.svc.Name, recs, target)
}

// operator answers a release's questions from the terminal: one reader of
// stdin for the whole run, so two prompts never split the operator's lines.
// What a line means depends on where the release stands when it arrives.
type operator struct {
	rel *engine.Release
	out io.Writer

	mu       sync.Mutex
	gate     string    // the approval gate the last prompt asked about; an answer approves it once
	promptAt time.Time // when the last prompt was printed
}

// answerGuard is how long after a prompt an answer is taken as typed
// ahead, before the operator could read the question, and ignored.
const answerGuard = 300 * time.Millisecond

func newOperator(rel *engine.Release, in io.Reader, out io.Writer) *operator {
	op := &operator{rel: rel, out: out}
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			op.answer(strings.ToLower(strings.TrimSpace(sc.Text())))
		}
	}()
	return op
}

// prompt asks what to do when the release starts waiting for the operator.
func (op *operator) prompt(ev engine.Event) {
	switch {
	case ev.Kind == engine.EventGateWaiting && ev.Gate != nil && ev.Gate.Kind == engine.GateApproval:
		op.mu.Lock()
		op.gate, op.promptAt = ev.Gate.Key, time.Now()
		op.mu.Unlock()
		fmt.Fprintf(op.out, "approve step %d (%s)? [y]es / [p]ause / [r]oll back (anything else: keep waiting): ", ev.Step+1, ev.Gate.Key)
	case ev.Kind == engine.EventPaused:
		who := "paused"
		if op.rel.Snapshot().PausedBy == "failure" {
			who = "paused by a failure"
		}
		op.mu.Lock()
		op.promptAt = time.Now()
		op.mu.Unlock()
		fmt.Fprintf(op.out, "%s: [c]ontinue (retry the step) / [r]oll back / [a]bort, leaving it as it is: ", who)
	}
}

// answer turns a line into a command for the release's current state. The
// same letter never means opposite things: r is roll back whether the
// release waits at a gate or was paused just before the line arrived.
func (op *operator) answer(line string) {
	op.mu.Lock()
	early := time.Since(op.promptAt) < answerGuard
	op.mu.Unlock()
	if early && line != "" {
		fmt.Fprintln(op.out, "ignored: typed before the question above appeared; answer it again")
		return
	}
	sn := op.rel.Snapshot()
	var cmd engine.Command
	switch {
	case sn.State == engine.ReleasePaused:
		switch line {
		case "c", "continue", "resume":
			cmd = engine.CmdResume
		case "r", "rollback":
			cmd = engine.CmdRollback
		case "a", "abort":
			cmd = engine.CmdAbort
		}
	case sn.Gate != nil && sn.Gate.Gate.Kind == engine.GateApproval:
		switch line {
		case "y", "yes":
			// The approval is for the gate the prompt named, once: a second
			// y typed ahead never passes the next gate.
			op.mu.Lock()
			gate := op.gate
			op.gate = ""
			op.mu.Unlock()
			if err := op.rel.Approve(gate, op.rel.Snapshot().Actor); err != nil {
				fmt.Fprintln(op.out, err)
			}
			return
		case "p", "pause":
			cmd = engine.CmdPause
		case "r", "rollback":
			cmd = engine.CmdRollback
		}
	default:
		return // nothing is asked now
	}
	if cmd == "" {
		fmt.Fprintln(op.out, "still waiting; answer with one of the letters above, or Ctrl-C to leave it as it is")
		return
	}
	if err := op.rel.Send(cmd); err != nil {
		fmt.Fprintln(op.out, err)
	}
}

// outcomeError maps how a release ended to the process's exit code.
func outcomeError(name string, o engine.Outcome, err error) error {
	if err != nil && o == "" {
		return err
	}
	msg := func(s string) error {
		if err != nil {
			return fmt.Errorf("%s: %s: %w", name, s, err)
		}
		return errors.New(name + ": " + s)
	}
	switch o {
	case engine.Succeeded:
		return nil
	case engine.RolledBack:
		return withCode(exitRolledBack, msg("rolled back"))
	case engine.WaitingForApproval:
		return withCode(exitWaiting, msg("waiting for approval: `cutover approve "+name+"` continues, `cutover rollback "+name+"` undoes it"))
	case engine.Aborted:
		return withCode(exitAborted, msg("stopped where it was; `cutover deploy` resumes it, `cutover rollback` undoes it"))
	case engine.TakenOver:
		return withCode(exitTakenOver, msg("taken over by another writer"))
	default:
		return withCode(exitFailed, msg("stopped on a failure and left as it is; `cutover deploy` again resumes it (retrying the step), `cutover rollback "+name+"` undoes it"))
	}
}

// checkStrategy validates a --strategy flag before anything is connected.
func checkStrategy(st string) error {
	switch engine.StrategyType(st) {
	case "", engine.Rolling, engine.BlueGreen, engine.Canary:
		return nil
	}
	return withCode(exitUsage, fmt.Errorf("--strategy %q: want rolling, bluegreen or canary", st))
}

// hasApproval reports whether the plan stops for an operator anywhere.
func hasApproval(p engine.Plan) bool {
	for _, st := range p.Steps {
		if st.Kind == engine.StepGate && st.Gate.Kind == engine.GateApproval && !st.Done {
			return true
		}
	}
	return false
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/journal"
)

// serviceStatus is the truth about a service (engine.ReadStatus), with
// where its router is: what `cutover status` prints.
type serviceStatus = engine.Status

func newStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show a service's instances, health, router table and release in progress",
		Long: `status rebuilds the picture of SERVICE from the Docker host's labels, the
router's table and the journal, so it is the truth even after a console or
deploy process died mid-release.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			s, err := openService(cmd.Context(), cmd, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.status(cmd.Context(), true)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// status gathers the service's state; probe says whether to probe each
// instance's health (status does, the console's home view does not).
func (s *service) status(ctx context.Context, probe bool) (serviceStatus, error) {
	if err := s.connected(); err != nil {
		return serviceStatus{Service: s.svc.Name}, err
	}
	deps := s.deps()
	st, err := engine.ReadStatus(ctx, deps, engine.StatusOptions{
		Now: time.Now(), Host: hostname(), Alive: journal.OwnerAlive, Probe: probe, Spec: s.spec})
	st.Router.Listen, st.Router.Admin = s.routerListen, s.routerAdmin
	if st.Router.Error != "" {
		st.Router.Error = s.routerDown(errors.New(st.Router.Error)).Error()
	}
	return st, err
}

// printAnalysis prints an analysis window's figures against each limit:
// the ones so far while it runs, or its verdict.
func printAnalysis(w io.Writer, a engine.AnalysisResult, now time.Time) {
	head := fmt.Sprintf("%s after %s of %s", a.Verdict, config.FormatDuration(a.Elapsed), config.FormatDuration(a.Window))
	if a.Verdict == engine.VerdictPending {
		head = fmt.Sprintf("running, %s of %s, %s left", config.FormatDuration(a.Elapsed.Round(time.Second)),
			config.FormatDuration(a.Window), config.FormatDuration(a.Left().Round(time.Second)))
	}
	if !a.At.IsZero() {
		head += " (figures of " + engine.Ago(now, a.At) + ")"
	}
	fmt.Fprintf(w, "analysis %s\n", head)
	for _, l := range a.Lines() {
		mark := "✓"
		switch {
		case l.Waiting:
			mark = "…"
		case !l.OK:
			mark = "×"
		}
		fmt.Fprintf(w, "         %s %s\n", mark, l.Text)
	}
}

func printStatus(w io.Writer, st serviceStatus, now time.Time) {
	fmt.Fprintf(w, "service  %s\n", st.Service)
	fmt.Fprintf(w, "router   %s (admin %s)", st.Router.Listen, st.Router.Admin)
	if st.Router.Error != "" {
		fmt.Fprintf(w, "  ✗ %s", st.Router.Error)
	} else {
		fmt.Fprintf(w, "  epoch %d", st.Router.Table.Epoch)
	}
	fmt.Fprintln(w)
	if len(st.Router.Shares) > 0 {
		var parts []string
		for v, f := range st.Router.Shares {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", v, f*100))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "traffic  %s\n", strings.Join(parts, " · "))
	}
	if r := st.Release; r != nil {
		progress := string(r.State)
		if r.Ended.IsZero() && r.Steps > 0 {
			progress += fmt.Sprintf(", step %d/%d", min(r.Step+1, r.Steps), r.Steps)
		}
		fmt.Fprintf(w, "release  %s  %s %s (%s)  %s, by %s, %s\n",
			r.ID, r.Kind, r.Summary(), r.Strategy, progress, r.Actor, engine.Ago(now, r.Started))
		if r.Error != "" {
			fmt.Fprintf(w, "         last error: %s\n", r.Error)
		}
	}
	if l := st.Lease; l != nil {
		state := "held"
		if !l.Live {
			state = "stale: its process is gone; `cutover deploy` resumes, `cutover rollback` undoes"
		}
		fmt.Fprintf(w, "lease    %s by pid %d on %s (%s)\n", l.Release, l.Owner.PID, l.Owner.Host, state)
		if l.Live && l.Owner.Control != "" {
			fmt.Fprintf(w, "         run by cutover serve: `cutover approve %s` and `cutover rollback %s` reach it (%s)\n", st.Service, st.Service, l.Owner.Control)
		}
	}
	if a := st.Analysis; a != nil {
		printAnalysis(w, *a, now)
	}
	if st.Next != "" {
		fmt.Fprintf(w, "next     %s\n", st.Next)
	}
	if st.RollbackFirst != "" && st.RollbackTo.Version != "" {
		fmt.Fprintf(w, "rollback `cutover rollback %s` returns to %s: %s, then the others are drained and removed\n", st.Service, st.RollbackTo.Version, st.RollbackFirst)
	}
	fmt.Fprintln(w)
	total := 0
	for _, b := range st.Router.Table.Backends {
		total += b.Weight
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tVERSION\tSTATE\tHEALTH\tTRAFFIC\tIN-FLIGHT\tADDR\tNODE\tUPTIME\tRESTARTS")
	for _, in := range st.Instances {
		traffic := "-"
		if in.InRouter && total > 0 {
			traffic = fmt.Sprintf("%.1f%%", float64(in.Weight)*100/float64(total))
		}
		health := string(in.Health.Status)
		if in.Health.Detail != "" && in.Health.Status != engine.HealthHealthy {
			health += " (" + in.Health.Detail + ")"
		}
		up := "-"
		if in.State == engine.StateRunning && !in.Started.IsZero() {
			up = now.Sub(in.Started).Round(time.Second).String()
		}
		node := in.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\n",
			in.Name, in.Version, in.State, health, traffic, in.InFlight, in.Addr, node, up, in.Restarts)
	}
	if len(st.Instances) == 0 {
		fmt.Fprintln(tw, "(no instances)")
	}
	tw.Flush()
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "\n⚠ %s\n", warn)
	}
}

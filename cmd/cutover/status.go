package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/journal"
)

// serviceStatus is the truth about a service, rebuilt from Docker's labels,
// the router's table and the journal: what `cutover status` prints.
type serviceStatus struct {
	Service   string                `json:"service"`
	Router    routerStatus          `json:"router"`
	Instances []instanceStatus      `json:"instances"`
	Release   *engine.ReleaseRecord `json:"release,omitempty"` // the latest release
	Lease     *leaseStatus          `json:"lease,omitempty"`   // a release in progress
}

type routerStatus struct {
	Listen string             `json:"listen"`
	Admin  string             `json:"admin"`
	Error  string             `json:"error,omitempty"`
	Table  engine.RouteTable  `json:"table"`
	Shares map[string]float64 `json:"shares"` // version → fraction of traffic
	Stats  engine.Stats       `json:"-"`      // read with the table, for the console
}

type instanceStatus struct {
	engine.Instance
	Health   engine.Health `json:"health"`
	Weight   int           `json:"weight"`
	InRouter bool          `json:"in_router"`
	InFlight int64         `json:"in_flight"`
}

type leaseStatus struct {
	engine.Lease
	Live bool `json:"live"`
}

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
			st, err := s.status(cmd.Context())
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

// status gathers the service's state: the live part and the journal's.
func (s *service) status(ctx context.Context) (serviceStatus, error) {
	st, err := s.liveStatus(ctx)
	if err != nil {
		return st, err
	}
	st.Release, st.Lease = journalStatus(ctx, s.journal, s.svc.Name)
	return st, nil
}

// liveStatus reads the containers, their health and the router. An
// unreachable router is reported in the result rather than failing, so the
// containers still show.
func (s *service) liveStatus(ctx context.Context) (serviceStatus, error) {
	st := serviceStatus{Service: s.svc.Name, Router: routerStatus{Listen: s.routerListen, Admin: s.routerAdmin}}
	insts, err := s.platform.Instances(ctx, s.svc.Name)
	if err != nil {
		return st, err
	}
	table, stats, rerr := s.router.State(ctx)
	if rerr != nil {
		st.Router.Error = s.routerDown(rerr).Error()
	}
	st.Router.Table, st.Router.Stats = table, stats
	st.Router.Shares = map[string]float64{}
	for v := range table.Weights() {
		st.Router.Shares[v] = table.Share(v)
	}
	inFlight := map[string]int64{}
	for _, b := range stats.Backends {
		inFlight[b.ID] = b.InFlight
	}
	for _, in := range insts {
		is := instanceStatus{Instance: in, InFlight: inFlight[in.ID]}
		for _, b := range table.Backends {
			if b.ID == in.ID {
				is.InRouter, is.Weight = true, b.Weight
			}
		}
		is.Health, err = s.platform.Health(ctx, in.ID, s.spec.Health)
		if err != nil {
			is.Health = engine.Health{Status: engine.HealthUnknown, Detail: err.Error()}
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
	return st, nil
}

// journalStatus is what the journal says of a service: its latest release
// and the lease of a release in progress, with whether its owner lives.
// Either is nil when there is none (or the journal cannot be read).
func journalStatus(ctx context.Context, j engine.Journal, service string) (*engine.ReleaseRecord, *leaseStatus) {
	var rec *engine.ReleaseRecord
	var lease *leaseStatus
	if recs, err := j.Releases(ctx, service, 1); err == nil && len(recs) > 0 {
		rec = &recs[0]
	}
	if l, ok, err := j.Active(ctx, service); err == nil && ok {
		lease = &leaseStatus{Lease: l, Live: l.Live(time.Now(), hostname(), journal.OwnerAlive)}
	}
	return rec, lease
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
		from := "nothing"
		if r.Stable().Version != "" {
			from = r.Stable().Version
		}
		progress := string(r.State)
		if r.Ended.IsZero() && r.Steps > 0 {
			progress += fmt.Sprintf(", step %d/%d", min(r.Step+1, r.Steps), r.Steps)
		}
		fmt.Fprintf(w, "release  %s  %s %s → %s (%s)  %s, by %s, %s\n",
			r.ID, r.Kind, from, r.To.Version, r.Strategy, progress, r.Actor, engine.Ago(now, r.Started))
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
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tVERSION\tSTATE\tHEALTH\tWEIGHT\tIN-FLIGHT\tADDR\tUPTIME\tRESTARTS")
	for _, in := range st.Instances {
		weight := "-"
		if in.InRouter {
			weight = fmt.Sprint(in.Weight)
		}
		health := string(in.Health.Status)
		if in.Health.Detail != "" && in.Health.Status != engine.HealthHealthy {
			health += " (" + in.Health.Detail + ")"
		}
		up := "-"
		if in.State == engine.StateRunning && !in.Started.IsZero() {
			up = now.Sub(in.Started).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\n",
			in.Name, in.Version, in.State, health, weight, in.InFlight, in.Addr, up, in.Restarts)
	}
	if len(st.Instances) == 0 {
		fmt.Fprintln(tw, "(no instances)")
	}
	tw.Flush()
	var strays []string
	for _, b := range st.Router.Table.Backends {
		found := false
		for _, in := range st.Instances {
			if in.ID != b.ID {
				continue
			}
			found = true
			if in.Addr != "" && in.Addr != b.Addr && b.Weight > 0 {
				fmt.Fprintf(w, "\n⚠ the router sends %s's traffic to %s, but it now listens on %s (Docker restarted it); the router holds it out, so its share goes to the others\n",
					in.Name, b.Addr, in.Addr)
			}
		}
		if !found {
			strays = append(strays, b.ID)
		}
	}
	if len(strays) > 0 {
		fmt.Fprintf(w, "\n⚠ the router routes to backends with no container: %s\n", strings.Join(strays, ", "))
	}
}

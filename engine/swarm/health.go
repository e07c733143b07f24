package swarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/instances"
)

// logsTimeout bounds reading a crashed task's last words, which Swarm may
// have to fetch from another node.
const logsTimeout = 3 * time.Second

// Health probes the instance once. Swarm's view of the task comes first:
// a task that ended, that its node rejected, or that Swarm cannot place
// is crashed at once, with Swarm's own words (waiting would only run into
// the start timeout with no reason given); one still on its way (pending,
// preparing, starting) is starting. A running task gets an HTTP GET of
// check.Path at its published port: 2xx and 3xx pass. A failed probe is
// a verdict, not an error; errors are Swarm's.
func (p *Platform) Health(ctx context.Context, id string, check engine.HealthCheck) (engine.Health, error) {
	t, _, err := p.cli.TaskInspectWithRaw(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return engine.Health{Status: engine.HealthCrashed, Detail: "task is gone: Swarm no longer knows it"}, nil
	}
	if err != nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: %w", id, err)
	}
	st := t.Status
	stopping := rank(t.DesiredState) > rank(swarm.TaskStateRunning)
	crashed := func(detail string) (engine.Health, error) {
		return engine.Health{Status: engine.HealthCrashed, Detail: detail}, nil
	}
	switch st.State {
	case swarm.TaskStateRunning:
		if stopping {
			return crashed(fmt.Sprintf("Swarm is stopping it (desired state %s)", t.DesiredState))
		}
	case swarm.TaskStateComplete, swarm.TaskStateFailed, swarm.TaskStateShutdown:
		return crashed(p.crashDetail(ctx, t))
	case swarm.TaskStateRejected:
		detail := "rejected by node " + p.nodeName(ctx, t.NodeID) + ": " + orUnknown(st.Err)
		if strings.HasPrefix(st.Err, "No such image") {
			// Swarm keeps the pull's own error in the node's daemon log only.
			detail += " (the node could not pull it: check that it reaches the registry and that the login is valid;" +
				" an image with no registry must be on every node that may run it)"
		}
		return crashed(detail)
	case swarm.TaskStateOrphaned:
		return crashed("its node " + p.nodeName(ctx, t.NodeID) + " is lost: Swarm gave the task up")
	case swarm.TaskStateRemove:
		return crashed("Swarm removed it")
	case swarm.TaskStatePending:
		if st.Err != "" {
			return crashed("Swarm cannot place it: " + st.Err)
		}
		fallthrough
	default: // on its way: new, allocated, assigned, accepted, preparing, ready, starting
		if stopping {
			return crashed(fmt.Sprintf("Swarm stopped it before it ran (desired state %s)", t.DesiredState))
		}
		detail := string(st.State)
		if st.Message != "" && st.Message != detail {
			detail += ": " + st.Message
		}
		return engine.Health{Status: engine.HealthStarting, Detail: detail}, nil
	}

	s, _, err := p.cli.ServiceInspectWithRaw(ctx, t.ServiceID, swarm.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return crashed("its swarm service was removed")
	}
	if err != nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: inspect its service: %w", id, err)
	}
	n, err := p.nodeOf(ctx, t.NodeID)
	if err != nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: %w", id, err)
	}
	addr := addrOf(t, n, targetPort(s))
	if addr == "" {
		return engine.Health{Status: engine.HealthUnhealthy, Detail: "running but has no published port on node " + n.name}, nil
	}
	status, detail := p.probe.Probe(ctx, addr, check)
	return engine.Health{Status: status, Detail: detail}, nil
}

// crashDetail says how a task ended, in Swarm's words and its own last
// output lines.
func (p *Platform) crashDetail(ctx context.Context, t swarm.Task) string {
	st := t.Status
	var what string
	switch {
	case st.State == swarm.TaskStateShutdown:
		what = "shut down by Swarm"
		if st.Message != "" {
			what += ": " + st.Message
		}
	case st.ContainerStatus != nil:
		what = fmt.Sprintf("exited with code %d", st.ContainerStatus.ExitCode)
	default:
		what = string(st.State)
	}
	// "task: non-zero exit (3)" only repeats the exit code.
	if st.Err != "" && !strings.HasPrefix(st.Err, "task: non-zero exit") {
		what += ": " + st.Err
	}
	if t.NodeID != "" {
		what += " on node " + p.nodeName(ctx, t.NodeID)
	}
	lctx, cancel := context.WithTimeout(ctx, logsTimeout)
	defer cancel()
	lines, _ := p.Logs(lctx, t.ID, instances.CrashLogLines)
	return instances.CrashDetail(what, lines)
}

// nodeName is a node's host name, or its ID when Swarm cannot say.
func (p *Platform) nodeName(ctx context.Context, id string) string {
	if id == "" {
		return "(none)"
	}
	if n, err := p.nodeOf(ctx, id); err == nil && n.name != "" {
		return n.name
	}
	return id
}

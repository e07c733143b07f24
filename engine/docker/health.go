package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/instances"
)

// Health probes the instance once. Docker's view comes first: an exited,
// dead or restarting container is crashed (waiting will not make it
// healthy); Restarts counts the restarts of a running one. A running one gets an HTTP GET of check.Path: 2xx and 3xx
// pass. Where the image has its own HEALTHCHECK, its state is reported in
// Docker and must agree before the instance counts as healthy.
// A failed probe is a verdict, not an error; errors are Docker's.
func (p *Platform) Health(ctx context.Context, id string, check engine.HealthCheck) (engine.Health, error) {
	info, err := p.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return engine.Health{Status: engine.HealthCrashed, Detail: "container is gone"}, nil
	}
	if err != nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: %w", id, err)
	}
	if info.ContainerJSONBase == nil || info.State == nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: Docker reports no state", id)
	}
	st := info.State
	h := engine.Health{}
	if st.Health != nil {
		h.Docker = string(st.Health.Status)
	}

	switch st.Status {
	case container.StateExited, container.StateDead:
		h.Status = engine.HealthCrashed
		h.Detail = p.crashDetail(ctx, id, fmt.Sprintf("exited with code %d", st.ExitCode), st)
		return h, nil
	case container.StateRestarting:
		h.Status = engine.HealthCrashed
		h.Detail = p.crashDetail(ctx, id, fmt.Sprintf("restarting (%d restarts, last exit code %d)", info.RestartCount, st.ExitCode), st)
		return h, nil
	case container.StateCreated:
		h.Status = engine.HealthStarting
		h.Detail = "created, not started"
		return h, nil
	case container.StatePaused:
		h.Status = engine.HealthUnhealthy
		h.Detail = "paused"
		return h, nil
	case container.StateRemoving:
		h.Status = engine.HealthCrashed
		h.Detail = "being removed"
		return h, nil
	}
	// Running again after Docker restarted it: the probe says whether it
	// serves now. The engine, which knows the count at launch, treats a
	// restart of an instance it watches as a crash; an instance that came
	// back weeks ago is simply healthy (the restart count shows).
	h.Restarts = info.RestartCount

	addr := addrOf(info)
	if addr == "" {
		h.Status = engine.HealthUnhealthy
		h.Detail = "running but has no address (no published port)"
		return h, nil
	}
	status, detail := p.probe.Probe(ctx, addr, check)
	h.Status, h.Detail = status, detail
	switch h.Docker {
	case "", string(container.Healthy), string(container.NoHealthcheck):
	case string(container.Unhealthy):
		if h.Status == engine.HealthHealthy {
			h.Status = engine.HealthUnhealthy
			h.Detail = "Docker HEALTHCHECK: unhealthy" + lastHealthOutput(st.Health)
		}
	case string(container.Starting):
		if h.Status == engine.HealthHealthy {
			h.Status = engine.HealthStarting
			h.Detail = "Docker HEALTHCHECK: starting"
		}
	}
	return h, nil
}

// crashDetail adds the container's last output lines, and the OOM kill
// Docker recorded, to what to tell an operator about a crash.
func (p *Platform) crashDetail(ctx context.Context, id, what string, st *container.State) string {
	if st.OOMKilled {
		what += ", killed: out of memory"
	}
	if st.Error != "" {
		what += ": " + st.Error
	}
	lines, _ := p.Logs(ctx, id, instances.CrashLogLines)
	return instances.CrashDetail(what, lines)
}

func lastHealthOutput(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	last := h.Log[len(h.Log)-1]
	if out := strings.TrimSpace(last.Output); out != "" {
		return fmt.Sprintf(" (exit %d: %s)", last.ExitCode, out)
	}
	return fmt.Sprintf(" (exit %d)", last.ExitCode)
}

package docker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/instances"
)

// restartPolicy is unless-stopped, as kamal uses: an instance that
// serves traffic keeps running across a crash of its process, a restart of
// the Docker engine and a reboot, without any console alive (traffic must
// outlive the console). Crash loops stay visible: Docker counts restarts
// (RestartCount, reset only by an explicit start) and Health reports any
// instance that has restarted, or is restarting, as crashed.
const restartPolicy = container.RestartPolicyUnlessStopped

// swarmTaskLabel is on every container Swarm runs for a task.
const swarmTaskLabel = "com.docker.swarm.task.id"

// Instances lists the service's containers, stopped ones included, from
// their labels alone. An empty service lists every instance cutover manages.
// The containers of Swarm tasks carry the same labels but are the Swarm
// platform's (stopping one here would only make Swarm start another), so
// they are left out.
func (p *Platform) Instances(ctx context.Context, service string) ([]engine.Instance, error) {
	f := filters.NewArgs(filters.Arg("label", engine.LabelManaged+"=true"))
	if service != "" {
		f.Add("label", engine.LabelService+"="+service)
	}
	list, err := p.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list instances of %s on %s: %w", service, p.host, err)
	}
	out := make([]engine.Instance, 0, len(list))
	for _, c := range list {
		if c.Labels[swarmTaskLabel] != "" {
			continue
		}
		info, err := p.cli.ContainerInspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed between list and inspect
		}
		if err != nil {
			return nil, fmt.Errorf("inspect instance %s: %w", strings.TrimPrefix(firstName(c.Names), "/"), err)
		}
		out = append(out, p.instanceOf(info))
	}
	// Oldest first, so a listing reads in launch order and is stable.
	slices.SortStableFunc(out, func(a, b engine.Instance) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Instance inspects one instance by container ID or name.
func (p *Platform) Instance(ctx context.Context, id string) (engine.Instance, error) {
	info, err := p.cli.ContainerInspect(ctx, id)
	if err != nil {
		return engine.Instance{}, fmt.Errorf("inspect instance %s: %w", id, err)
	}
	return p.instanceOf(info), nil
}

// Launch creates and starts a container for spec and returns once it is
// started (not healthy). The image must already be on the host.
func (p *Platform) Launch(ctx context.Context, spec engine.InstanceSpec) (engine.Instance, error) {
	if err := instances.Validate(spec); err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s %s: %w", spec.Service, spec.Version, err)
	}
	img, err := p.ImageInfo(ctx, spec.Image)
	if err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s %s: %w", spec.Service, spec.Version, err)
	}
	name := instances.Name(spec.Service, spec.Version)
	port, err := nat.NewPort("tcp", strconv.Itoa(spec.Port))
	if err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s: %w", name, err)
	}

	cfg := &container.Config{
		Image:        spec.Image,
		Env:          instances.Env(spec.Env),
		Cmd:          spec.Command,
		Labels:       instances.Labels(spec, img.Digest),
		ExposedPorts: nat.PortSet{port: struct{}{}},
	}
	hostCfg := &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: restartPolicy}}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		hostCfg.NetworkMode = container.NetworkMode(spec.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{spec.Network: {}}}
	}
	var created container.CreateResponse
	for attempt := 1; ; attempt++ {
		if spec.Network == "" {
			// Loopback only, on a port picked here rather than by Docker:
			// Docker gives a container whose binding names no port a new
			// one each time it restarts it, which would leave the router
			// sending its share to a dead address.
			hostPort, err := instances.FreePort("127.0.0.1")
			if err != nil {
				return engine.Instance{}, fmt.Errorf("launch %s: pick a host port: %w", name, err)
			}
			hostCfg.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: hostPort}}}
		}
		created, err = p.cli.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, name)
		if err != nil {
			return engine.Instance{}, fmt.Errorf("launch %s: create container: %w", name, err)
		}
		err = p.cli.ContainerStart(ctx, created.ID, container.StartOptions{})
		if err == nil {
			break
		}
		// Leave nothing half-made behind, even if ctx was what failed.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_ = p.cli.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		// Another process may take the port between picking and binding.
		if spec.Network == "" && attempt < 3 && portTaken(err) {
			continue
		}
		return engine.Instance{}, fmt.Errorf("launch %s: start container: %w", name, err)
	}
	info, err := p.cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		return engine.Instance{ID: created.ID, Name: name, Service: spec.Service, Version: spec.Version,
				Image: spec.Image, Digest: img.Digest, ReleaseID: spec.ReleaseID, State: engine.StateRunning, Node: p.node},
			fmt.Errorf("launch %s: inspect after start: %w", name, err)
	}
	return p.instanceOf(info), nil
}

// Stop stops the container (SIGTERM, then SIGKILL after grace) and removes
// it with its anonymous volumes. An instance already gone is not an error.
func (p *Platform) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int((grace + time.Second - 1) / time.Second) // round up: never cut the grace short
	if grace <= 0 {
		secs = 0
	}
	if err := p.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop instance %s: %w", id, err)
	}
	err := p.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
		return fmt.Errorf("remove instance %s: %w", id, err)
	}
	return nil
}

// Logs returns the last n lines of the instance's output (stdout and
// stderr interleaved), for telling an operator why it failed.
func (p *Platform) Logs(ctx context.Context, id string, n int) ([]string, error) {
	rc, err := p.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	defer rc.Close()
	lines, err := instances.LogLines(rc, n)
	if err != nil {
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	return lines, nil
}

// instanceOf rebuilds an Instance from what Docker knows of a container.
func (p *Platform) instanceOf(info container.InspectResponse) engine.Instance {
	in := engine.Instance{ID: info.ID, State: engine.StateGone, Node: p.node}
	if info.ContainerJSONBase != nil {
		in.Name = strings.TrimPrefix(info.Name, "/")
		in.Restarts = info.RestartCount
		if s := info.State; s != nil {
			in.State = stateOf(s.Status)
			in.ExitCode = s.ExitCode
			if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && t.Year() > 1 {
				in.Started = t
			}
		}
	}
	if info.Config != nil {
		instances.FromLabels(&in, info.Config.Labels)
		in.Image = info.Config.Image
	}
	in.Addr = addrOf(info)
	return in
}

// portTaken reports a start that failed because the host port was bound.
func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "already allocated") || strings.Contains(msg, "address already in use")
}

// addrOf is where the router reaches the container: the loopback binding
// of its exposed port, or its IP on the user network it joined. Empty while
// the container is not running (Docker releases the binding).
func addrOf(info container.InspectResponse) string {
	ns := info.NetworkSettings
	if ns == nil || info.Config == nil {
		return ""
	}
	for port := range info.Config.ExposedPorts {
		for _, b := range ns.Ports[port] {
			if b.HostPort != "" && (b.HostIP == "127.0.0.1" || b.HostIP == "") {
				ip := b.HostIP
				if ip == "" {
					ip = "127.0.0.1"
				}
				return net.JoinHostPort(ip, b.HostPort)
			}
		}
	}
	if info.HostConfig != nil && info.HostConfig.NetworkMode.IsUserDefined() {
		if ep := ns.Networks[string(info.HostConfig.NetworkMode)]; ep != nil && ep.IPAddress != "" {
			for port := range info.Config.ExposedPorts {
				return net.JoinHostPort(ep.IPAddress, port.Port())
			}
		}
	}
	return ""
}

func stateOf(status container.ContainerState) engine.InstanceState {
	switch status {
	case container.StateCreated:
		return engine.StateCreated
	case container.StateRunning:
		return engine.StateRunning
	case container.StateRestarting:
		return engine.StateRestarting
	case container.StateExited, container.StateDead:
		return engine.StateExited
	case container.StateRemoving:
		return engine.StateGone
	default: // paused: not one of ours, say it as Docker does
		return engine.InstanceState(status)
	}
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

package swarm

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
	"github.com/docker/docker/api/types/swarm"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/instances"
)

// labelImage keeps the image reference as the operator gave it; the task
// runs it pinned (by digest or image ID), which reads badly.
const labelImage = "cutover.image"

// restartDelay is how long Swarm waits before replacing a task that
// ended: short, since the router holds a dead address out meanwhile.
const restartDelay = time.Second

// taskWait bounds how long Launch waits for Swarm to make the service's
// first task, which the orchestrator does within milliseconds.
const taskWait = 30 * time.Second

// pollEvery is how often Launch and Stop look at Swarm's progress.
const pollEvery = 50 * time.Millisecond

// Instances lists the service's instances: the current task of each of
// its Swarm services (the one Swarm wants running; a task it replaced is
// gone). An empty service lists every instance cutover manages.
func (p *Platform) Instances(ctx context.Context, service string) ([]engine.Instance, error) {
	services, err := p.services(ctx, service)
	if err != nil {
		return nil, err
	}
	if len(services) == 0 {
		return nil, nil
	}
	if err := p.refreshNodes(ctx); err != nil {
		return nil, err
	}
	tasks, err := p.tasks(ctx, services)
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: %w", service, err)
	}
	out := make([]engine.Instance, 0, len(services))
	for _, s := range services {
		t, earlier, err := current(tasks[s.ID])
		if err != nil {
			continue // being removed, or not scheduled yet: nothing to show
		}
		out = append(out, p.instanceOf(ctx, s, t, earlier))
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

// services lists cutover's Swarm services of service (all when empty).
func (p *Platform) services(ctx context.Context, service string) ([]swarm.Service, error) {
	f := filters.NewArgs(filters.Arg("label", engine.LabelManaged+"=true"))
	if service != "" {
		f.Add("label", engine.LabelService+"="+service)
	}
	list, err := p.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list instances of %s: list swarm services: %w", service, err)
	}
	return list, nil
}

// tasks lists the tasks of services in one call, by service ID. A service
// removed meanwhile makes Swarm refuse the whole filter; it is then asked
// again without it.
func (p *Platform) tasks(ctx context.Context, services []swarm.Service) (map[string][]swarm.Task, error) {
	ids := make([]string, 0, len(services))
	for _, s := range services {
		ids = append(ids, s.ID)
	}
	for attempt := 0; ; attempt++ {
		f := filters.NewArgs()
		for _, id := range ids {
			f.Add("service", id)
		}
		list, err := p.cli.TaskList(ctx, swarm.TaskListOptions{Filters: f})
		if err == nil {
			out := make(map[string][]swarm.Task, len(ids))
			for _, t := range list {
				out[t.ServiceID] = append(out[t.ServiceID], t)
			}
			return out, nil
		}
		if !cerrdefs.IsNotFound(err) || attempt == 3 {
			return nil, fmt.Errorf("list swarm tasks: %w", err)
		}
		// Keep the services that still exist.
		kept := ids[:0]
		for _, id := range ids {
			if _, _, err := p.cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{}); err == nil {
				kept = append(kept, id)
			}
		}
		if ids = kept; len(ids) == 0 {
			return nil, nil
		}
	}
}

// current picks a service's current task: the newest one Swarm wants
// running (or ready to run, during a restart delay). earlier counts the
// tasks it replaced that Swarm still remembers.
func current(tasks []swarm.Task) (swarm.Task, int, error) {
	var cur *swarm.Task
	for i := range tasks {
		t := &tasks[i]
		if rank(t.DesiredState) > rank(swarm.TaskStateRunning) {
			continue
		}
		if cur == nil || t.Meta.CreatedAt.After(cur.Meta.CreatedAt) {
			cur = t
		}
	}
	if cur == nil {
		return swarm.Task{}, 0, errNoTask
	}
	return *cur, len(tasks) - 1, nil
}

// rank orders task states as Swarm moves a task through them.
func rank(s swarm.TaskState) int {
	order := []swarm.TaskState{swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending,
		swarm.TaskStateAssigned, swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady,
		swarm.TaskStateStarting, swarm.TaskStateRunning, swarm.TaskStateComplete, swarm.TaskStateShutdown,
		swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned}
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

// instanceOf rebuilds an Instance from a service and its current task.
func (p *Platform) instanceOf(ctx context.Context, s swarm.Service, t swarm.Task, earlier int) engine.Instance {
	in := engine.Instance{ID: t.ID, Name: s.Spec.Name, Restarts: earlier, State: stateOf(t, earlier)}
	instances.FromLabels(&in, s.Spec.Labels)
	in.Image = s.Spec.Labels[labelImage]
	if in.Image == "" && s.Spec.TaskTemplate.ContainerSpec != nil {
		in.Image = s.Spec.TaskTemplate.ContainerSpec.Image
	}
	in.Started = t.Meta.CreatedAt
	if t.Status.State == swarm.TaskStateRunning {
		in.Started = t.Status.Timestamp
	}
	if cs := t.Status.ContainerStatus; cs != nil {
		in.ExitCode = cs.ExitCode
	}
	if t.NodeID != "" {
		if n, err := p.nodeOf(ctx, t.NodeID); err == nil {
			in.Node = n.name
			if in.State == engine.StateRunning {
				in.Addr = addrOf(t, n, targetPort(s))
			}
		}
	}
	return in
}

// stateOf maps a current task's state onto an instance's: one waiting to
// start after an earlier task ended is restarting, as Docker says.
func stateOf(t swarm.Task, earlier int) engine.InstanceState {
	switch s := t.Status.State; {
	case s == swarm.TaskStateRunning:
		return engine.StateRunning
	case rank(s) < rank(swarm.TaskStateRunning):
		if earlier > 0 {
			return engine.StateRestarting
		}
		return engine.StateCreated
	case s == swarm.TaskStateRemove || s == swarm.TaskStateOrphaned:
		return engine.StateGone
	default: // complete, shutdown, failed, rejected
		return engine.StateExited
	}
}

// targetPort is the container port the service publishes.
func targetPort(s swarm.Service) uint32 {
	if e := s.Spec.EndpointSpec; e != nil {
		for _, pc := range e.Ports {
			if pc.PublishMode == swarm.PortConfigPublishModeHost {
				return pc.TargetPort
			}
		}
	}
	return 0
}

// addrOf is where the router reaches a running task: its node's address
// and the host port its container port is published on.
func addrOf(t swarm.Task, n node, target uint32) string {
	if n.addr == "" {
		return ""
	}
	for _, pc := range t.Status.PortStatus.Ports {
		if pc.PublishMode == swarm.PortConfigPublishModeHost && pc.PublishedPort != 0 && (target == 0 || pc.TargetPort == target) {
			return net.JoinHostPort(n.addr, strconv.Itoa(int(pc.PublishedPort)))
		}
	}
	return ""
}

// Launch creates a Swarm service of one replica for spec and returns its
// task once Swarm made it (usually still pending: the engine's health
// probes say when it serves). The image must be on the manager, or named
// by digest so nodes can pull it; registry images get the login of
// Options.Auth, which Swarm hands to every node that runs the task.
func (p *Platform) Launch(ctx context.Context, spec engine.InstanceSpec) (engine.Instance, error) {
	if err := instances.Validate(spec); err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s %s: %w", spec.Service, spec.Version, err)
	}
	image, digest, err := p.pin(ctx, spec)
	if err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s %s: %w", spec.Service, spec.Version, err)
	}
	name := serviceName(spec.Service, spec.Version)
	var auth string
	if p.auth != nil && !isImageID(image) {
		if auth, err = p.auth.RegistryAuth(ctx, image); err != nil {
			return engine.Instance{}, fmt.Errorf("launch %s: registry login for the nodes: %w", name, err)
		}
	}
	hostPort, err := instances.FreePort("")
	if err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s: pick a host port: %w", name, err)
	}
	port, _ := strconv.Atoi(hostPort)
	labels := instances.Labels(spec, digest)
	labels[labelImage] = spec.Image
	delay := restartDelay
	grace := spec.StopGrace
	one := uint64(1)
	ss := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           image,
				Labels:          labels,
				Env:             instances.Env(spec.Env),
				Args:            spec.Command,
				StopGracePeriod: &grace,
			},
			// Like Docker's unless-stopped: traffic outlives the console,
			// so Swarm brings back whatever dies, on the same port.
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
			Placement:     &swarm.Placement{Constraints: spec.Placement},
			Resources:     resources(spec.Resources),
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		EndpointSpec: &swarm.EndpointSpec{
			// No virtual IP: the router balances, not Swarm's mesh.
			Mode: swarm.ResolutionModeDNSRR,
			Ports: []swarm.PortConfig{{Protocol: swarm.PortConfigProtocolTCP, TargetPort: uint32(spec.Port),
				PublishedPort: uint32(port), PublishMode: swarm.PortConfigPublishModeHost}},
		},
	}
	if spec.StopGrace <= 0 {
		ss.TaskTemplate.ContainerSpec.StopGracePeriod = nil // Swarm's default, 10s
	}
	if spec.Network != "" {
		ss.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: spec.Network}}
	}
	created, err := p.cli.ServiceCreate(ctx, ss, swarm.ServiceCreateOptions{EncodedRegistryAuth: auth})
	if err != nil {
		return engine.Instance{}, fmt.Errorf("launch %s: create swarm service: %w", name, err)
	}
	t, err := p.firstTask(ctx, created.ID)
	if err != nil {
		// Leave nothing half-made behind, even if ctx was what failed.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = p.cli.ServiceRemove(rctx, created.ID)
		return engine.Instance{}, fmt.Errorf("launch %s: %w", name, err)
	}
	s, _, err := p.cli.ServiceInspectWithRaw(ctx, created.ID, swarm.ServiceInspectOptions{})
	if err != nil {
		return engine.Instance{ID: t.ID, Name: name, Service: spec.Service, Version: spec.Version, Image: spec.Image,
			Digest: digest, ReleaseID: spec.ReleaseID, State: engine.StateCreated}, fmt.Errorf("launch %s: inspect after create: %w", name, err)
	}
	return p.instanceOf(ctx, s, t, 0), nil
}

// pin names the image of spec as the task must run it: by digest or by
// image ID, so every node runs the very image chosen even if its tag
// moves. An image by ID is never pulled (it exists where it was built or
// loaded); one by digest is pulled by nodes that lack it.
func (p *Platform) pin(ctx context.Context, spec engine.InstanceSpec) (image, digest string, err error) {
	image, digest, err = p.docker.Pinned(ctx, spec.Image)
	if err == nil {
		return image, digest, nil
	}
	if repo, d, ok := strings.Cut(spec.Image, "@"); ok && strings.HasPrefix(d, "sha256:") && repo != "" {
		// Not on the manager, but named exactly: the nodes pull it.
		return spec.Image, d, nil
	}
	return "", "", err
}

// isImageID reports a reference that is a bare image ID.
func isImageID(ref string) bool { return strings.HasPrefix(ref, "sha256:") }

// resources converts limits and reservations to Swarm's units.
func resources(r engine.Resources) *swarm.ResourceRequirements {
	if r == (engine.Resources{}) {
		return nil
	}
	out := &swarm.ResourceRequirements{}
	if r.LimitCPUs > 0 || r.LimitMemory > 0 {
		out.Limits = &swarm.Limit{NanoCPUs: int64(r.LimitCPUs * 1e9), MemoryBytes: r.LimitMemory}
	}
	if r.ReserveCPUs > 0 || r.ReserveMemory > 0 {
		out.Reservations = &swarm.Resources{NanoCPUs: int64(r.ReserveCPUs * 1e9), MemoryBytes: r.ReserveMemory}
	}
	return out
}

// serviceName is the instance's name as a Swarm service name, which must
// be a DNS label: letters, digits and dashes, at most 63 characters. The
// version's dots become dashes; its labels keep it exactly.
func serviceName(service, version string) string {
	name := instances.Name(service, version)
	b := []byte(name)
	for i, c := range b {
		if c == '.' || c == '_' {
			b[i] = '-'
		}
	}
	name = string(b)
	if len(name) > 63 {
		// Keep the random suffix that makes the name unique.
		name = name[:63-7] + name[len(name)-7:]
	}
	return name
}

// firstTask waits until Swarm has made the service's task.
func (p *Platform) firstTask(ctx context.Context, serviceID string) (swarm.Task, error) {
	ctx, cancel := context.WithTimeout(ctx, taskWait)
	defer cancel()
	for {
		list, err := p.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
		if err == nil {
			if t, _, err := current(list); err == nil {
				return t, nil
			}
		} else if ctx.Err() == nil {
			return swarm.Task{}, fmt.Errorf("list its tasks: %w", err)
		}
		select {
		case <-ctx.Done():
			return swarm.Task{}, fmt.Errorf("swarm made no task for the service within %s: %w", taskWait, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// Stop removes the instance's Swarm service, so Swarm stops its task
// (SIGTERM, then SIGKILL after the stop grace given at launch: a service's
// grace cannot change without Swarm restarting its task) and replaces it
// with nothing. Stop waits, up to grace and a margin, until the task has
// stopped. An instance already gone is not an error; stopping a task Swarm
// already replaced stops its replacement too, for they are one instance
// slot.
func (p *Platform) Stop(ctx context.Context, id string, grace time.Duration) error {
	t, _, err := p.cli.TaskInspectWithRaw(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop instance %s: inspect task: %w", id, err)
	}
	list, err := p.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", t.ServiceID))})
	if cerrdefs.IsNotFound(err) {
		return p.waitStopped(ctx, []string{id}, grace)
	}
	if err != nil {
		return fmt.Errorf("stop instance %s: list its service's tasks: %w", id, err)
	}
	if err := p.cli.ServiceRemove(ctx, t.ServiceID); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop instance %s: remove swarm service: %w", id, err)
	}
	var ids []string
	for _, t := range list {
		ids = append(ids, t.ID)
	}
	return p.waitStopped(ctx, ids, grace)
}

// waitStopped waits until none of the tasks runs any more.
func (p *Platform) waitStopped(ctx context.Context, ids []string, grace time.Duration) error {
	limit := max(grace, 10*time.Second) + 30*time.Second // Swarm's default grace, and time to report it
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		running := ""
		for _, id := range ids {
			t, _, err := p.cli.TaskInspectWithRaw(ctx, id)
			if cerrdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				return fmt.Errorf("stop instance %s: %w", id, err)
			}
			if rank(t.Status.State) <= rank(swarm.TaskStateRunning) {
				running = id
				break
			}
		}
		if running == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop instance %s: task still running %s after its service was removed", running, limit)
		case <-time.After(pollEvery):
		}
	}
}

// Logs returns the last n lines of the task's output (stdout and stderr
// interleaved), for telling an operator why it failed.
func (p *Platform) Logs(ctx context.Context, id string, n int) ([]string, error) {
	rc, err := p.cli.TaskLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
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

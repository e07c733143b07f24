// Package swarm runs cutover's instances on a Docker Swarm. Swarm places,
// restarts and reschedules containers across nodes; cutover keeps what
// Swarm cannot do: weighted traffic, gates, analysis and one-swap rollback.
//
// Each instance is a Swarm service of one replica, named and labelled like
// a Docker instance, so that stopping an instance after it drained stops
// exactly that one (scaling a shared service down lets Swarm pick which
// task goes). Its task publishes the service port in host mode on a port
// chosen at launch, so the router, a process on the engine's host, and the
// engine's health probes reach it at <node address>:<port>, and a task
// Swarm restarts on the same node answers at the same address. An instance
// is a task: a task Swarm replaces (crash, lost node) is a new instance
// with a new id. The engine never updates a service, so Swarm's rolling
// update, which drops connections (moby#29148), never touches traffic.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/instances"
)

// Compile-time proof that Platform is what the engine needs.
var (
	_ engine.Platform = (*Platform)(nil)
	_ engine.Registry = (*Platform)(nil)
)

// RegistryAuth gives the login a node needs to pull an image from its
// registry: the X-Registry-Auth value for ref, or "" when ref needs none.
// *ecr.Puller implements it with the same token it pulls with.
type RegistryAuth interface {
	RegistryAuth(ctx context.Context, ref string) (string, error)
}

// Options tune a Platform.
type Options struct {
	// Auth, when set, gives every instance of a registry image the login
	// its nodes pull with (what `docker service create --with-registry-auth`
	// does). Without it, nodes pull anonymously.
	Auth RegistryAuth
}

// Platform is a Swarm, driven through one of its managers. It is safe for
// concurrent use.
type Platform struct {
	docker *docker.Platform // the manager's own engine: images and pulls
	cli    *client.Client
	auth   RegistryAuth
	probe  *instances.Prober

	mu    sync.Mutex
	nodes map[string]node // by node ID
}

// node is what an instance needs to know of the node it runs on.
type node struct {
	name string // host name, as `docker node ls` shows it
	addr string // address other hosts reach it on
}

// New connects to the Docker host of the environment (DOCKER_HOST, as the
// docker CLI does), which must be a Swarm manager.
func New(ctx context.Context, opts Options) (*Platform, error) {
	d, err := docker.New(ctx)
	if err != nil {
		return nil, err
	}
	p, err := NewWithDocker(ctx, d, opts)
	if err != nil {
		d.Close()
		return nil, err
	}
	return p, nil
}

// NewWithDocker runs instances through d's engine, which must be a Swarm
// manager. Close closes d.
func NewWithDocker(ctx context.Context, d *docker.Platform, opts Options) (*Platform, error) {
	info, err := d.Client().Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask Docker host %s about its swarm: %w", d.Host(), err)
	}
	switch {
	case info.Swarm.LocalNodeState != swarm.LocalNodeStateActive:
		return nil, fmt.Errorf("Docker host %s is not part of a swarm (state %s): run `docker swarm init`, or point DOCKER_HOST at a manager",
			d.Host(), orUnknown(string(info.Swarm.LocalNodeState)))
	case !info.Swarm.ControlAvailable:
		return nil, fmt.Errorf("Docker host %s is a swarm worker: services can only be run from a manager; point DOCKER_HOST at one (`docker node ls` on a manager lists them)", d.Host())
	}
	return &Platform{docker: d, cli: d.Client(), auth: opts.Auth, probe: instances.NewProber(), nodes: map[string]node{}}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Docker returns the manager's engine, for the images it holds and pulls.
func (p *Platform) Docker() *docker.Platform { return p.docker }

// Close releases the connections.
func (p *Platform) Close() error {
	p.probe.Close()
	return p.docker.Close()
}

// ListImages lists the manager's local images of repo, newest first.
func (p *Platform) ListImages(ctx context.Context, repo string) ([]engine.Image, error) {
	return p.docker.ListImages(ctx, repo)
}

// ImageInfo resolves ref to an image on the manager.
func (p *Platform) ImageInfo(ctx context.Context, ref string) (engine.Image, error) {
	return p.docker.ImageInfo(ctx, ref)
}

// Pull pulls ref onto the manager, so a bad reference or login fails the
// release before anything changes; the other nodes pull when Swarm gives
// them a task, with the login Launch passes along.
func (p *Platform) Pull(ctx context.Context, ref, auth string, progress func(string)) error {
	return p.docker.Pull(ctx, ref, auth, progress)
}

// nodeOf returns what is known of a node, asking Swarm when it is new.
func (p *Platform) nodeOf(ctx context.Context, id string) (node, error) {
	p.mu.Lock()
	n, ok := p.nodes[id]
	p.mu.Unlock()
	if ok {
		return n, nil
	}
	sn, _, err := p.cli.NodeInspectWithRaw(ctx, id)
	if err != nil {
		return node{}, fmt.Errorf("inspect node %s: %w", id, err)
	}
	n = nodeInfo(sn)
	p.mu.Lock()
	p.nodes[id] = n
	p.mu.Unlock()
	return n, nil
}

// refreshNodes reads every node once, so addresses that changed (a node
// that rejoined) are current.
func (p *Platform) refreshNodes(ctx context.Context) error {
	list, err := p.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return fmt.Errorf("list swarm nodes: %w", err)
	}
	nodes := make(map[string]node, len(list))
	for _, n := range list {
		nodes[n.ID] = nodeInfo(n)
	}
	p.mu.Lock()
	p.nodes = nodes
	p.mu.Unlock()
	return nil
}

// nodeInfo takes a node's name and address. A manager may report
// 0.0.0.0 as its own address (it listens on every interface); its
// manager address then says which one the others use.
func nodeInfo(n swarm.Node) node {
	addr := n.Status.Addr
	if (addr == "" || addr == "0.0.0.0") && n.ManagerStatus != nil {
		if host, _, err := net.SplitHostPort(n.ManagerStatus.Addr); err == nil {
			addr = host
		}
	}
	return node{name: n.Description.Hostname, addr: addr}
}

// errNoTask says a service has no task (yet, or any more).
var errNoTask = errors.New("service has no task")

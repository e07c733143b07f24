package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/swarm"
)

// demoSwarmFile records, in the demo's state directory, the swarm that
// `cutover demo --swarm` made, so --down leaves it. There is none when
// the engine was in a swarm already: --down leaves that one alone.
func (p demoPaths) swarmFile() string { return filepath.Join(p.state, "demo-swarm.json") }

// demoAdvertise is the address the demo's swarm advertises: loopback, as
// `docker swarm init --advertise-addr 127.0.0.1` does, so the playground
// needs nothing of the machine's network.
const demoAdvertise = "127.0.0.1"

// demoSwarm makes the engine a one-node swarm when it is in none, and
// records that the demo made it; a swarm the engine manages already is
// used as it is. It returns what the demo's hints say about the swarm.
func demoSwarm(ctx context.Context, cli *client.Client, p demoPaths) (string, error) {
	info, err := cli.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("demo: ask the Docker engine about its swarm: %w", err)
	}
	switch s := info.Swarm; s.LocalNodeState {
	case dswarm.LocalNodeStateActive:
		if !s.ControlAvailable {
			return "", errors.New("demo: this Docker engine is a swarm worker; run the demo on a manager (DOCKER_HOST), or without --swarm")
		}
		if _, err := os.Stat(p.swarmFile()); err == nil {
			return fmt.Sprintf("a one-node swarm the demo made before (node %s at %s); --down takes the engine out of it again", info.Name, s.NodeAddr), nil
		}
		return fmt.Sprintf("the engine's own swarm (node %s at %s); --down keeps it", info.Name, s.NodeAddr), nil
	case dswarm.LocalNodeStateInactive:
		made, err := swarm.Init(ctx, cli, demoAdvertise)
		if err != nil {
			return "", fmt.Errorf("demo: %w", err)
		}
		b, _ := json.Marshal(made)
		if err := os.WriteFile(p.swarmFile(), b, 0o644); err != nil {
			// Unrecorded, --down could not leave it: leave it now.
			return "", errors.Join(fmt.Errorf("demo: %w", err), made.Leave(ctx, cli))
		}
		return fmt.Sprintf("a one-node swarm the demo made (node %s at %s); --down takes the engine out of it again", info.Name, demoAdvertise), nil
	default:
		return "", fmt.Errorf("demo: the engine's swarm is %s (%s); see `docker info`, or run the demo without --swarm", s.LocalNodeState, s.Error)
	}
}

// demoSwarmHint is the line the demo prints about its swarm. Through a
// loopback node address, a task's published port is reached through
// Docker's userland proxy, which resets a connection to a task killed by
// hand; the line says so where it applies.
func demoSwarmHint(ctx context.Context, cli *client.Client, about string) string {
	hint := "  swarm:     " + about
	if info, err := cli.Info(ctx); err == nil {
		if ip := net.ParseIP(info.Swarm.NodeAddr); ip != nil && ip.IsLoopback() {
			hint += "\n             through 127.0.0.1 a task killed by hand (docker kill) may reset one request in flight; a swarm advertising the host's address does not"
		}
	}
	return hint + "\n"
}

// onSwarm is the demo's config with its service on Swarm.
func onSwarm(cfg string) string {
	const at = "\n    replicas: 4\n"
	return strings.Replace(cfg, at, at+"    platform: swarm  # each instance a Swarm service (cutover demo --swarm)\n", 1)
}

// demoFleetPlatform is where the demo's instances run, from the demo's
// config: on Swarm for a demo made with --swarm, else d itself. It is nil
// when the engine has left the demo's swarm since, taking its services
// with it. close releases what it connected.
func demoFleetPlatform(ctx context.Context, d *docker.Platform, p demoPaths) (plat engine.Platform, onSwarm bool, close func(), err error) {
	cfg, err := config.Load(p.config)
	if err != nil {
		return d, false, func() {}, nil // no demo config (any more): the Docker demo's containers, if any
	}
	svc, err := cfg.Service(demoService)
	if err != nil || svc.Platform != config.PlatformSwarm {
		return d, false, func() {}, nil
	}
	if info, err := d.Client().Info(ctx); err == nil && info.Swarm.LocalNodeState == dswarm.LocalNodeStateInactive {
		return nil, true, func() {}, nil
	}
	dp, sw, err := connectHost(ctx, svc, nil)
	if err != nil {
		return nil, true, func() {}, err
	}
	return sw, true, func() { closeHost(dp, sw) }, nil
}

// waitTaskContainers waits until the containers of the demo's Swarm tasks
// are gone (Swarm removes them a few seconds after their services), so
// that the demo's images, which they hold, can be removed.
func waitTaskContainers(ctx context.Context, cli *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", engine.LabelService+"="+demoService), filters.Arg("label", "com.docker.swarm.task.id"))
	for {
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err == nil && len(list) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%d still there", len(list))
			}
			return fmt.Errorf("wait for Swarm to remove the demo's task containers: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// leaveDemoSwarm leaves the swarm the demo made, if it did. A swarm that
// runs services the demo did not make by now is someone's work: it stays,
// and the message says how to leave it.
func leaveDemoSwarm(ctx context.Context, cli *client.Client, p demoPaths, out io.Writer) error {
	b, err := os.ReadFile(p.swarmFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var made swarm.OneNode
	if err := json.Unmarshal(b, &made); err != nil {
		return fmt.Errorf("demo: read %s: %w", p.swarmFile(), err)
	}
	info, err := cli.Info(ctx)
	if err != nil {
		return fmt.Errorf("demo: ask the Docker engine about its swarm: %w", err)
	}
	if info.Swarm.LocalNodeState != dswarm.LocalNodeStateActive {
		fmt.Fprintln(out, "the swarm the demo made is gone already")
		return os.Remove(p.swarmFile())
	}
	others, err := cli.ServiceList(ctx, dswarm.ServiceListOptions{})
	if err != nil {
		return fmt.Errorf("demo: list the swarm's services: %w", err)
	}
	if len(others) > 0 {
		fmt.Fprintf(out, "left the swarm the demo made in place: %d services it did not make run on it (docker service ls); `docker swarm leave --force` leaves it\n", len(others))
		return os.Remove(p.swarmFile())
	}
	if err := made.Leave(ctx, cli); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintln(out, "left the swarm the demo made")
	return os.Remove(p.swarmFile())
}

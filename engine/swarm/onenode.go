package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/engine/instances"
)

// OneNode is a one-node swarm made on an engine that was in none, for a
// playground (cutover demo --swarm) or tests: what putting the engine back
// as it was needs. It is plain data, so its maker can keep it in a file
// and leave the swarm from another process.
type OneNode struct {
	// NetworksBefore are the engine's networks before the swarm, so Leave
	// removes only those the swarm added (ingress, docker_gwbridge).
	NetworksBefore []string `json:"networks_before"`
}

// Init makes the engine of cli a one-node swarm: a manager that runs the
// tasks itself, whose control port listens on loopback (on a free port:
// nothing outside this host joins it), advertising advertise, which is
// the address the router reaches tasks at (see Platform). The engine must
// be in no swarm.
func Init(ctx context.Context, cli *client.Client, advertise string) (OneNode, error) {
	o, err := Snapshot(ctx, cli)
	if err != nil {
		return OneNode{}, err
	}
	port, err := instances.FreePort("127.0.0.1")
	if err != nil {
		return OneNode{}, fmt.Errorf("docker swarm init: pick a control port: %w", err)
	}
	req := swarm.InitRequest{ListenAddr: "127.0.0.1:" + port, AdvertiseAddr: advertise}
	if _, err := cli.SwarmInit(ctx, req); err != nil {
		return OneNode{}, fmt.Errorf("docker swarm init --advertise-addr %s: %w", advertise, err)
	}
	return o, nil
}

// Snapshot is what Leave needs to put the engine back as it is now, in no
// swarm: for a swarm made by other means than Init (a test that fails
// half-way through making one).
func Snapshot(ctx context.Context, cli *client.Client) (OneNode, error) {
	before, err := networkNames(ctx, cli)
	if err != nil {
		return OneNode{}, err
	}
	return OneNode{NetworksBefore: before}, nil
}

// Leave takes the engine out of the swarm (its services and their tasks
// go with it) and removes the networks the swarm added, once Swarm has
// let go of them.
func (o OneNode) Leave(ctx context.Context, cli *client.Client) error {
	if err := cli.SwarmLeave(ctx, true); err != nil {
		return fmt.Errorf("docker swarm leave: %w", err)
	}
	after, err := networkNames(ctx, cli)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range after {
		if !slices.Contains(o.NetworksBefore, n) && (n == "docker_gwbridge" || n == "ingress") {
			errs = append(errs, RemoveNetwork(ctx, cli, n))
		}
	}
	return errors.Join(errs...)
}

// RemoveNetwork removes a network, waiting for Swarm to take the last task
// containers off it (it does so a few seconds after their service goes).
func RemoveNetwork(ctx context.Context, cli *client.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		err := cli.NetworkRemove(ctx, name)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove network %s: %w", name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func networkNames(ctx context.Context, cli *client.Client) ([]string, error) {
	list, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var names []string
	for _, n := range list {
		names = append(names, n.Name)
	}
	return names, nil
}

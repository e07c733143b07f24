package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/swarm"
	"github.com/cutover/cutover/engine/swarm/swarmtest"
)

// On an engine in no swarm, `cutover demo --swarm` makes a one-node swarm
// advertising 127.0.0.1 and says what that costs; --down takes the engine
// out of it again, with the networks it added, unless the swarm runs
// services the demo did not make by then. (On an engine in a swarm
// already, the console's Swarm test shows --down keeping it.)
func TestDemoMakesASwarmWhereThereIsNoneAndLeavesOnlyThat(t *testing.T) {
	swarmtest.WithoutSwarm(t, func(cli *client.Client) {
		ctx := context.Background()
		p, err := pathsIn(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(p.state, 0o755); err != nil {
			t.Fatal(err)
		}
		networks := func() []string {
			list, err := cli.NetworkList(ctx, network.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, n := range list {
				names = append(names, n.Name)
			}
			slices.Sort(names)
			return names
		}
		before := networks()
		up := func() string {
			about, err := demoSwarm(ctx, cli, p)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cli.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s := info.Swarm; s.LocalNodeState != dswarm.LocalNodeStateActive || !s.ControlAvailable || s.NodeAddr != "127.0.0.1" {
				t.Fatalf("after the demo's swarm init: state %s, manager %v, node address %s; want an active manager at 127.0.0.1", s.LocalNodeState, s.ControlAvailable, s.NodeAddr)
			}
			return about
		}

		about := up()
		if !strings.Contains(about, "a one-node swarm the demo made") {
			t.Errorf("the demo's hint about its swarm: %q", about)
		}
		if hint := demoSwarmHint(ctx, cli, about); !strings.Contains(hint, "through 127.0.0.1 a task killed by hand (docker kill) may reset one request in flight") {
			t.Errorf("the hint does not warn about a loopback node address:\n%s", hint)
		}
		if again, err := demoSwarm(ctx, cli, p); err != nil || !strings.Contains(again, "the demo made before") {
			t.Errorf("the demo run again on its own swarm: %q, %v; want it to say the demo made it", again, err)
		}

		// Someone's service on the demo's swarm: --down keeps the swarm.
		var made swarm.OneNode
		if b, err := os.ReadFile(p.swarmFile()); err != nil || json.Unmarshal(b, &made) != nil {
			t.Fatalf("the demo did not record the swarm it made: %v", err)
		}
		zero := uint64(0)
		other, err := cli.ServiceCreate(ctx, dswarm.ServiceSpec{
			Annotations:  dswarm.Annotations{Name: "cutover-test-other", Labels: demotest.Labels()},
			TaskTemplate: dswarm.TaskSpec{ContainerSpec: &dswarm.ContainerSpec{Image: "cutover-test-none:0"}},
			Mode:         dswarm.ServiceMode{Replicated: &dswarm.ReplicatedService{Replicas: &zero}},
		}, dswarm.ServiceCreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := leaveDemoSwarm(ctx, cli, p, &out); err != nil {
			t.Fatal(err)
		}
		if info, err := cli.Info(ctx); err != nil || info.Swarm.LocalNodeState != dswarm.LocalNodeStateActive || !strings.Contains(out.String(), "in place: 1 services it did not make") {
			t.Errorf("--down with another service on the demo's swarm: state %s (%v), said %q; want the swarm kept, and why", info.Swarm.LocalNodeState, err, out.String())
		}
		if err := cli.ServiceRemove(ctx, other.ID); err != nil {
			t.Fatal(err)
		}
		if err := made.Leave(ctx, cli); err != nil {
			t.Fatal(err)
		}

		// Only the demo's: --down leaves it, and the networks it added.
		up()
		out.Reset()
		if err := leaveDemoSwarm(ctx, cli, p, &out); err != nil {
			t.Fatal(err)
		}
		if info, err := cli.Info(ctx); err != nil || info.Swarm.LocalNodeState != dswarm.LocalNodeStateInactive {
			t.Errorf("after --down the engine is still in the demo's swarm (%s, %v): %s", info.Swarm.LocalNodeState, err, out.String())
		}
		if after := networks(); !slices.Equal(after, before) {
			t.Errorf("networks after --down %v, before the demo %v", after, before)
		}
		if _, err := os.Stat(p.swarmFile()); !os.IsNotExist(err) {
			t.Errorf("the demo's record of its swarm is still there after --down (%v)", err)
		}
	})
}

// Package swarmtest gives tests a single-node Docker Swarm on the local
// engine, and leaves the engine as it found it.
//
// Use it with a TestMain, which also builds the demo images (demotest):
//
//	func TestMain(m *testing.M) { os.Exit(swarmtest.Main(m)) }
//
// The first test that asks for the swarm (Platform) gets it: if the engine
// is in no swarm, one is made (a manager whose control ports listen on
// loopback, advertising the host's own address, see advertiseAddr) and,
// when the last test process using it ends, left, with the networks the
// swarm added removed. A test process none of whose tests asked makes no
// swarm. Test processes running at once share it: they count themselves
// in a state file under a file lock, and the last one out leaves. A swarm
// that was there before is used and never left. A test process killed
// before its end (or crashed) leaves the swarm behind; the next run finds
// it marked as made here, uses it, and leaves it when it ends.
package swarmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/journal"
	cswarm "github.com/cutover/cutover/engine/swarm"
)

// stateDir holds the shared state of the test processes on this host.
var stateDir = filepath.Join(os.TempDir(), "cutover-swarmtest")

// shared is what the test processes on this host agree on.
type shared struct {
	// Made says the swarm is ours: the engine was in none before, so the
	// last user leaves it and removes the networks it added.
	Made bool `json:"made"`
	// Before lists the networks there were before the swarm, so only those
	// it added (ingress, docker_gwbridge) are removed.
	Before []string `json:"before_networks,omitempty"`
	Users  []int    `json:"users"`
}

// joined is this process's part in the shared swarm: package-level, as
// the tests of a package share nothing else; only this helper keeps it.
var joined struct {
	sync.Mutex
	tried bool  // join was called (once per process, unless WithoutSwarm left)
	in    bool  // this process is counted in, so Main counts it out
	err   error // why no swarm could be had, for Platform to report
}

// Main runs the package's tests with the demo images built once, and at
// the end counts this process out of the swarm its tests used, if any.
func Main(m *testing.M) int {
	code := demotest.Main(m)
	joined.Lock()
	defer joined.Unlock()
	if joined.in {
		if err := leave(); err != nil {
			fmt.Fprintln(os.Stderr, "swarmtest:", err)
			if code == 0 {
				code = 1
			}
		}
		joined.in = false
	}
	return code
}

// ensure counts this process in on first use.
func ensure() error {
	joined.Lock()
	defer joined.Unlock()
	if !joined.tried {
		joined.tried = true
		joined.err = join()
		joined.in = joined.err == nil
	}
	return joined.err
}

// Platform returns the swarm platform, or skips the test (fails it when
// CUTOVER_REQUIRE_INTEGRATION=1) when there is no Docker engine or no
// swarm could be made.
func Platform(t testing.TB) *cswarm.Platform {
	t.Helper()
	d := demotest.Docker(t)
	if err := ensure(); err != nil {
		if os.Getenv(demotest.EnvRequire) == "1" {
			t.Fatalf("a swarm is required (%s=1): %v", demotest.EnvRequire, err)
		}
		t.Skipf("skipping: needs a swarm on the Docker engine: %v (set %s=1 to fail instead)", err, demotest.EnvRequire)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := cswarm.NewWithDocker(ctx, d, cswarm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WithoutSwarm runs fn with the engine in no swarm and no test process
// using one, holding the others off (their Platform waits) until fn
// returns. If fn left the engine in a swarm (or failed half-way), the test
// fails and the engine is taken out of it. A swarm
// this process made and alone uses is left first; the next Platform makes
// it again. It skips the test when the engine is in a swarm it cannot
// leave: one that was there before, or one other test processes use.
func WithoutSwarm(t testing.TB, fn func(cli *client.Client)) {
	t.Helper()
	cli := demotest.Docker(t).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	joined.Lock()
	defer joined.Unlock()
	if joined.in {
		if err := leave(); err != nil {
			t.Fatal(err)
		}
		joined.in, joined.tried, joined.err = false, false, nil
	}
	skip := ""
	err := locked(func(st *shared) error {
		info, err := cli.Info(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("Docker engine: %w", err)
		case len(st.Users) > 0:
			skip = fmt.Sprintf("test processes %v use the engine's swarm", st.Users)
			return nil
		case info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive:
			skip = fmt.Sprintf("the engine is in a swarm these tests did not make (state %s)", info.Swarm.LocalNodeState)
			return nil
		}
		found, err := cswarm.Snapshot(ctx, cli)
		if err != nil {
			return err
		}
		// Even when fn fails half-way (t.Fatal ends it here), the engine
		// goes back to no swarm before the lock is let go.
		defer func() {
			info, err := cli.Info(ctx)
			switch {
			case err != nil:
				t.Errorf("Docker engine: %v", err)
			case info.Swarm.LocalNodeState != swarm.LocalNodeStateInactive:
				t.Errorf("the test left the engine in a swarm (state %s), which it found in none; leaving it", info.Swarm.LocalNodeState)
				if err := found.Leave(ctx, cli); err != nil {
					t.Errorf("put the engine back in no swarm: %v", err)
				}
			}
		}()
		fn(cli)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skipf("skipping: needs an engine in no swarm: %s", skip)
	}
}

// Network creates an attachable overlay network for the test and removes
// it when the test ends, after Swarm has let go of it.
func Network(t testing.TB, cli *client.Client) string {
	t.Helper()
	name := fmt.Sprintf("cutover-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	ctx := context.Background()
	if _, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "overlay", Attachable: true, Labels: demotest.Labels()}); err != nil {
		t.Fatalf("create overlay network: %v", err)
	}
	t.Cleanup(func() {
		if err := cswarm.RemoveNetwork(context.Background(), cli, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// join counts this process in, making the swarm if there is none.
func join() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	return locked(func(st *shared) error {
		info, err := cli.Info(ctx)
		if err != nil {
			return fmt.Errorf("Docker engine: %w", err)
		}
		switch info.Swarm.LocalNodeState {
		case swarm.LocalNodeStateActive:
			if !info.Swarm.ControlAvailable {
				return errors.New("the engine is a swarm worker; tests need a manager")
			}
		case swarm.LocalNodeStateInactive:
			made, err := cswarm.Init(ctx, cli, advertiseAddr())
			if err != nil {
				return err
			}
			*st = shared{Made: true, Before: made.NetworksBefore}
		default:
			return fmt.Errorf("the engine's swarm state is %q (%s)", info.Swarm.LocalNodeState, info.Swarm.Error)
		}
		st.Users = append(st.Users, os.Getpid())
		return nil
	})
}

// leave counts this process out; the last one out of a swarm made here
// leaves it and removes what it added.
func leave() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	var errs []error
	errs = append(errs, removeOwnServices(ctx, cli))
	errs = append(errs, locked(func(st *shared) error {
		st.Users = slices.DeleteFunc(st.Users, func(pid int) bool { return pid == os.Getpid() })
		if len(st.Users) > 0 || !st.Made {
			return nil
		}
		if err := (cswarm.OneNode{NetworksBefore: st.Before}).Leave(ctx, cli); err != nil {
			return err
		}
		*st = shared{}
		return nil
	}))
	return errors.Join(errs...)
}

// removeOwnServices removes swarm services this process's tests left
// behind (a test that failed before its cleanup was registered).
func removeOwnServices(ctx context.Context, cli *client.Client) error {
	f := filters.NewArgs()
	for k, v := range demotest.Labels() {
		f.Add("label", k+"="+v)
	}
	list, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list leftover test services: %w", err)
	}
	var errs []error
	for _, s := range list {
		if err := cli.ServiceRemove(ctx, s.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove leftover test service %s: %w", s.Spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// locked runs fn on the shared state under an exclusive file lock, with
// the users that died since (killed test processes) taken out.
func locked(fn func(*shared) error) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	path := filepath.Join(stateDir, "state.json")
	var st shared
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	st.Users = slices.DeleteFunc(st.Users, func(pid int) bool { return !journal.ProcessAlive(pid) })
	if err := fn(&st); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// advertiseAddr is the address the test node announces, which is where the
// router reaches its tasks: the host's own (the source address of its
// default route), as every node of a real swarm has, so connections go
// through the kernel's port mapping. Through 127.0.0.1 they would go
// through Docker's userland proxy, which accepts a connection for a task
// that is shutting down and then resets it: a POST sent in that moment is
// lost, where the kernel refuses the connection and the router sends the
// request elsewhere. Nothing listens on that address for it: the control
// ports stay on loopback. Without a default route, 127.0.0.1.
func advertiseAddr() string {
	c, err := net.Dial("udp", "203.0.113.1:9") // no packet is sent: this only asks for the route
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// NodeAddr is the address of the test swarm's node, as the router reaches
// its tasks.
func NodeAddr(t testing.TB, cli *client.Client) string {
	t.Helper()
	info, err := cli.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Swarm.NodeAddr
}

package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/ecr"
	cswarm "github.com/cutover/cutover/engine/swarm"
	"github.com/cutover/cutover/engine/swarm/swarmtest"
)

func TestMain(m *testing.M) { os.Exit(swarmtest.Main(m)) }

var healthz = engine.HealthCheck{Path: "/healthz", Timeout: time.Second}

// containerOf finds the container of a task on this (the only) node.
func containerOf(t *testing.T, cli *client.Client, taskID string) string {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.task.id="+taskID))})
	if err != nil || len(list) != 1 {
		t.Fatalf("container of task %s: %v, %d found", taskID, err, len(list))
	}
	return list[0].ID
}

func TestEachInstanceIsATaskOnItsNodeAtItsPublishedPort(t *testing.T) {
	images := demotest.Images(t)
	p := swarmtest.Platform(t)
	ctx := context.Background()
	svc := demotest.Service(t)
	info, err := p.Docker().Client().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.ImageInfo(ctx, images["1.0.0"])
	if err != nil {
		t.Fatal(err)
	}
	var launched []engine.Instance
	for range 2 {
		launched = append(launched, demotest.Launch(t, p, engine.InstanceSpec{Service: svc, Version: "1.0.0", Image: images["1.0.0"], ReleaseID: "r1"}))
	}
	got, err := p.Instances(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Instances(%s) = %+v, want 2", svc, got)
	}
	for _, in := range got {
		task, _, err := p.Docker().Client().TaskInspectWithRaw(ctx, in.ID)
		if err != nil {
			t.Fatalf("instance id %s is not a swarm task: %v", in.ID, err)
		}
		if in.ID != launched[0].ID && in.ID != launched[1].ID {
			t.Errorf("listed instance %s was not launched (%s, %s)", in.ID, launched[0].ID, launched[1].ID)
		}
		if task.Slot != 1 || !strings.HasPrefix(in.Name, "cutover-"+svc+"-1-0-0-") {
			t.Errorf("instance %s (slot %d): want one slot of a service named cutover-%s-1-0-0-<hex>", in.Name, task.Slot, svc)
		}
		if in.Service != svc || in.Version != "1.0.0" || in.ReleaseID != "r1" || in.Digest != img.Digest || in.Image != images["1.0.0"] {
			t.Errorf("instance from labels = %+v, want %s 1.0.0 r1 digest %s image %s", in, svc, img.Digest, images["1.0.0"])
		}
		demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 30*time.Second)
	}
	// The address is only known once the task runs: list again.
	got, err = p.Instances(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range got {
		if node := swarmtest.NodeAddr(t, p.Docker().Client()); in.State != engine.StateRunning || !strings.HasPrefix(in.Addr, node+":") || in.Started.IsZero() {
			t.Fatalf("running instance %+v: want state running at %s:<published port>", in, node)
		}
		if in.Node != info.Name {
			t.Errorf("instance node %q, want the node's host name %q", in.Node, info.Name)
		}
		code, body := demotest.Get(t, "http://"+in.Addr+"/")
		if code != 200 || !strings.HasPrefix(body, "cutover-demo 1.0.0 (") {
			t.Errorf("GET / on %s = %d %q", in.Addr, code, body)
		}
	}
	if got[0].Addr == got[1].Addr {
		t.Errorf("two instances share the address %s", got[0].Addr)
	}
	// The tasks' containers carry cutover's labels, but they are Swarm's:
	// the Docker platform on the same engine does not list them.
	if own, err := p.Docker().Instances(ctx, svc); err != nil || len(own) != 0 {
		t.Errorf("the Docker platform lists the swarm tasks of %s as its own: %+v (%v)", svc, own, err)
	}
}

func TestStopStopsExactlyThatInstanceAfterItsRequestsFinish(t *testing.T) {
	images := demotest.Images(t)
	p := swarmtest.Platform(t)
	ctx := context.Background()
	svc := demotest.Service(t)
	var ids []string
	for range 3 {
		in := demotest.Launch(t, p, engine.InstanceSpec{Service: svc, Version: "1.0.0", Image: images["1.0.0"], StopGrace: 5 * time.Second})
		demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 30*time.Second)
		ids = append(ids, in.ID)
	}
	list, err := p.Instances(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	var victim engine.Instance
	for _, in := range list {
		if in.ID == ids[1] {
			victim = in
		}
	}
	// A request in flight when the stop begins finishes: Swarm sends
	// SIGTERM and the app drains within the stop grace.
	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + victim.Addr + "/?sleep=1s")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		slow <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach the instance; nothing to observe from here
	if err := p.Stop(ctx, victim.ID, 5*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-slow; err != nil {
		t.Errorf("request in flight during the stop: %v", err)
	}
	left, err := p.Instances(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	var leftIDs []string
	for _, in := range left {
		leftIDs = append(leftIDs, in.ID)
	}
	if len(left) != 2 || leftIDs[0] == victim.ID || leftIDs[1] == victim.ID {
		t.Errorf("after stopping %s, instances %v; want the other two (%s, %s)", victim.ID, leftIDs, ids[0], ids[2])
	}
	if _, err := http.Get("http://" + victim.Addr + "/healthz"); err == nil {
		t.Errorf("the stopped instance still answers on %s", victim.Addr)
	}
	if err := p.Stop(ctx, victim.ID, time.Second); err != nil {
		t.Errorf("stopping an instance already gone = %v, want nil", err)
	}
	h, err := p.Health(ctx, victim.ID, healthz)
	if err != nil || h.Status != engine.HealthCrashed {
		t.Errorf("health of a stopped instance = %+v, %v; want crashed", h, err)
	}
}

func TestCrashingVersionIsCrashedWithSwarmsWordsAndItsLastOutput(t *testing.T) {
	images := demotest.Images(t)
	p := swarmtest.Platform(t)
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.2.0", Image: images["1.2.0-crash"]})
	h := demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthCrashed, 30*time.Second)
	for _, want := range []string{"exited with code 3", "DEMO_CRASH"} {
		if !strings.Contains(h.Detail, want) {
			t.Errorf("crash detail %q lacks %q", h.Detail, want)
		}
	}
}

func TestTaskSwarmCannotPlaceFailsAtOnceWithSwarmsReason(t *testing.T) {
	images := demotest.Images(t)
	p := swarmtest.Platform(t)
	for _, c := range []struct {
		name string
		spec engine.InstanceSpec
		want string
	}{
		{"constraint", engine.InstanceSpec{Placement: []string{"node.labels.cutover-nowhere==1"}}, "scheduling constraints not satisfied"},
		{"reservation", engine.InstanceSpec{Resources: engine.Resources{ReserveMemory: 1 << 50}}, "insufficient resources"},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.Service, spec.Version, spec.Image = demotest.Service(t), "1.0.0", images["1.0.0"]
			in := demotest.Launch(t, p, spec)
			start := time.Now()
			h := demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthCrashed, 10*time.Second)
			if !strings.HasPrefix(h.Detail, "Swarm cannot place it: no suitable node") || !strings.Contains(h.Detail, c.want) {
				t.Errorf("detail %q, want Swarm's reason naming %q", h.Detail, c.want)
			}
			t.Logf("reported after %s: %s", time.Since(start).Round(time.Millisecond), h.Detail)
		})
	}
}

func TestTaskSwarmReplacesIsANewInstanceAtTheSameAddress(t *testing.T) {
	images := demotest.Images(t)
	p := swarmtest.Platform(t)
	ctx := context.Background()
	svc := demotest.Service(t)
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: svc, Version: "1.0.0", Image: images["1.0.0"]})
	demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 30*time.Second)
	list, err := p.Instances(ctx, svc)
	if err != nil || len(list) != 1 {
		t.Fatalf("instances %+v, %v", list, err)
	}
	before := list[0]
	// Killed by hand: Swarm notices and starts a new task.
	timeout := 1
	if err := p.Docker().Client().ContainerStop(ctx, containerOf(t, p.Docker().Client(), in.ID), container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	h := demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthCrashed, 30*time.Second)
	t.Logf("the killed task: %s", h.Detail)
	var after engine.Instance
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := p.Instances(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 && list[0].ID != in.ID && list[0].State == engine.StateRunning {
			after = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replacement task within 30s: %+v", list)
		}
		time.Sleep(100 * time.Millisecond) // polling an observable: Swarm starting the replacement
	}
	if after.Addr != before.Addr || after.Name != before.Name || after.Restarts != 1 {
		t.Errorf("replacement %+v: want the same name and address as %+v, one restart", after, before)
	}
	demotest.WaitHealth(t, p, after.ID, healthz, engine.HealthHealthy, 30*time.Second)
}

func TestInstancesJoinTheOverlayNetworkAndServeOnTheirHostPort(t *testing.T) {
	images := demotest.Images(t)
	p := swarmtest.Platform(t)
	net := swarmtest.Network(t, p.Docker().Client())
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.1.0", Image: images["1.1.0"], Network: net})
	demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 30*time.Second)
	task, _, err := p.Docker().Client().TaskInspectWithRaw(context.Background(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for _, a := range task.NetworksAttachments {
		on = append(on, a.Network.Spec.Name)
	}
	if len(on) != 1 || on[0] != net {
		t.Errorf("task on networks %v, want %s", on, net)
	}
}

func TestLaunchOfMissingImageSaysPullOrBuildItAndLeavesNothing(t *testing.T) {
	p := swarmtest.Platform(t)
	svc := demotest.Service(t)
	_, err := p.Launch(context.Background(), engine.InstanceSpec{Service: svc, Version: "9.9", Image: "cutover-demo-missing:9.9", Port: demo.DefaultPort, Labels: demotest.Labels()})
	var me *docker.MissingImageError
	if !errors.As(err, &me) {
		t.Fatalf("launch of a missing image = %v, want a MissingImageError", err)
	}
	list, err := p.Docker().Client().ServiceList(context.Background(), swarm.ServiceListOptions{
		Filters: filters.NewArgs(filters.Arg("label", engine.LabelService+"="+svc))})
	if err != nil || len(list) != 0 {
		t.Errorf("a failed launch left services: %v, %v", list, err)
	}
}

// staticAuth is a registry login that is always the same.
type staticAuth string

func (a staticAuth) RegistryAuth(context.Context, string) (string, error) { return string(a), nil }

// The ECR puller is a login a Swarm platform can hand to its nodes, and the
// platform a host the puller can pull onto (the manager).
var (
	_ cswarm.RegistryAuth = (*ecr.Puller)(nil)
	_ ecr.Host            = (*cswarm.Platform)(nil)
)

// A registry image is pulled by the node that runs the task, with the
// login the platform was given (--with-registry-auth); without it, the
// node's refusal is reported at once in the registry's words.
func TestRegistryImageIsPulledByTheNodeWithTheLogin(t *testing.T) {
	const password = "swarm-node-password"
	images := demotest.Images(t)
	d := demotest.Docker(t)
	swarmtest.Platform(t) // skips without a swarm
	addr := demotest.Registry(t, "AWS", password)
	ctx := context.Background()
	cli := d.Client()

	pushed := fmt.Sprintf("%s/%s/web:1.0.0", addr, demotest.Repo())
	if err := cli.ImageTag(ctx, images["1.0.0"], pushed); err != nil {
		t.Fatal(err)
	}
	login, _ := registry.EncodeAuthConfig(registry.AuthConfig{Username: "AWS", Password: password, ServerAddress: addr})
	rc, err := cli.ImagePush(ctx, pushed, image.PushOptions{RegistryAuth: login})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	_, digest, err := d.Pinned(ctx, pushed)
	if err != nil || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("pushed image has no registry digest: %q, %v", digest, err)
	}
	ref := strings.TrimSuffix(pushed, ":1.0.0") + "@" + digest
	// Only a node's pull may bring it back.
	if _, err := cli.ImageRemove(ctx, pushed, image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{}) })
	if _, err := d.ImageInfo(ctx, ref); err == nil {
		t.Fatalf("%s is still on the host: the test would prove nothing", ref)
	}

	spec := engine.InstanceSpec{Service: demotest.Service(t), Version: "1.0.0", Image: ref}
	anonymous, err := cswarm.NewWithDocker(ctx, d, cswarm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := demotest.Launch(t, anonymous, spec)
	h := demotest.WaitHealth(t, anonymous, in.ID, healthz, engine.HealthCrashed, 30*time.Second)
	if !strings.HasPrefix(h.Detail, "rejected by node") || !strings.Contains(h.Detail, "No such image: "+ref) || !strings.Contains(h.Detail, "could not pull it") {
		t.Errorf("anonymous pull: %q, want the node's rejection saying it could not pull %s", h.Detail, ref)
	}

	withLogin, err := cswarm.NewWithDocker(ctx, d, cswarm.Options{Auth: staticAuth(login)})
	if err != nil {
		t.Fatal(err)
	}
	in = demotest.Launch(t, withLogin, spec)
	demotest.WaitHealth(t, withLogin, in.ID, healthz, engine.HealthHealthy, 60*time.Second)
	if in.Digest != digest || in.Image != ref {
		t.Errorf("instance runs %s (digest %s), want %s", in.Image, in.Digest, ref)
	}
}

package docker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"

	"github.com/docker/docker/api/types/container"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/docker"
)

func TestMain(m *testing.M) { os.Exit(demotest.Main(m)) }

var healthz = engine.HealthCheck{Path: "/healthz", Timeout: time.Second}

func TestLaunchedInstancesAreRebuiltFromLabelsAndStopRemovesThem(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	ctx := context.Background()
	svc := demotest.Service(t)
	ref := images["1.0.0"]
	img, err := p.ImageInfo(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}

	var launched []engine.Instance
	for range 2 {
		launched = append(launched, demotest.Launch(t, p, engine.InstanceSpec{
			Service: svc, Version: "1.0.0", Image: ref, ReleaseID: "r1", Port: demo.DefaultPort,
		}))
	}
	for _, in := range launched {
		if !strings.HasPrefix(in.Name, "cutover-"+svc+"-1.0.0-") || len(in.Name) != len("cutover-"+svc+"-1.0.0-")+6 {
			t.Errorf("container name %q, want cutover-%s-1.0.0-<6 hex>", in.Name, svc)
		}
		if !strings.HasPrefix(in.Addr, "127.0.0.1:") {
			t.Errorf("instance %s address %q, want a loopback port", in.Name, in.Addr)
		}
	}

	got, err := p.Instances(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Instances(%s) = %d instances, want 2: %+v", svc, len(got), got)
	}
	for i, in := range got {
		if in.ID != launched[i].ID {
			t.Errorf("instance %d is %s, want %s (launch order)", i, in.ID, launched[i].ID)
		}
		if in.Service != svc || in.Version != "1.0.0" || in.ReleaseID != "r1" || in.Digest != img.Digest || in.Image != ref {
			t.Errorf("instance from labels = %+v, want service %s version 1.0.0 release r1 digest %s image %s", in, svc, img.Digest, ref)
		}
		if host, _ := os.Hostname(); in.Node == "" || in.Node != p.Node() || in.Node != launched[i].Node {
			t.Errorf("instance node %q, want the engine's host name %q (this machine is %s)", in.Node, p.Node(), host)
		}
		if in.State != engine.StateRunning || in.Addr != launched[i].Addr || in.Started.IsZero() || in.Restarts != 0 {
			t.Errorf("instance state = %s addr %s started %v restarts %d", in.State, in.Addr, in.Started, in.Restarts)
		}
		h := demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 10*time.Second)
		if h.Detail != "" {
			t.Errorf("healthy instance has detail %q", h.Detail)
		}
		code, body := demotest.Get(t, "http://"+in.Addr+"/")
		if code != 200 || !strings.HasPrefix(body, "cutover-demo 1.0.0 (") {
			t.Errorf("GET / on %s = %d %q", in.Addr, code, body)
		}
	}

	if err := p.Stop(ctx, got[0].ID, 5*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	left, err := p.Instances(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != got[1].ID {
		t.Errorf("after stopping %s, Instances = %+v, want only %s", got[0].ID, left, got[1].ID)
	}
	if err := p.Stop(ctx, got[0].ID, time.Second); err != nil {
		t.Errorf("stopping an instance already gone = %v, want nil", err)
	}
	h, err := p.Health(ctx, got[0].ID, healthz)
	if err != nil || h.Status != engine.HealthCrashed {
		t.Errorf("health of a removed instance = %+v, %v; want crashed", h, err)
	}
}

func TestCrashingImageIsReportedCrashedWithItsLastWords(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.2.0", Image: images["1.2.0-crash"]})
	h := demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthCrashed, 10*time.Second)
	if !strings.Contains(h.Detail, "exit code 3") && !strings.Contains(h.Detail, "restart") {
		t.Errorf("crash detail %q names neither the exit code nor the restarts", h.Detail)
	}
	if !strings.Contains(h.Detail, "DEMO_CRASH") {
		t.Errorf("crash detail %q lacks the last output line naming DEMO_CRASH", h.Detail)
	}
}

func TestUnhealthyImageIsReportedUnhealthyWithTheStatus(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.3.0", Image: images["1.3.0-unhealthy"]})
	deadline := time.Now().Add(10 * time.Second)
	var h engine.Health
	for time.Now().Before(deadline) {
		var err error
		if h, err = p.Health(context.Background(), in.ID, healthz); err != nil {
			t.Fatal(err)
		}
		if h.Detail == "GET /healthz: 503" {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling an observable: the app starting to listen
	}
	if h.Status != engine.HealthUnhealthy || h.Detail != "GET /healthz: 503" {
		t.Errorf("health = %+v, want unhealthy \"GET /healthz: 503\"", h)
	}
}

func TestLaunchOfMissingImageSaysPullOrBuildIt(t *testing.T) {
	p := demotest.Docker(t)
	_, err := p.Launch(context.Background(), engine.InstanceSpec{
		Service: demotest.Service(t), Version: "9.9", Image: "cutover-demo-missing:9.9", Port: 8080,
		Labels: demotest.Labels(),
	})
	want := "image cutover-demo-missing:9.9 is not on the Docker host; pull or build it first"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("launch of a missing image = %v, want %q", err, want)
	}
	var me *docker.MissingImageError
	if !errors.As(err, &me) || me.Ref != "cutover-demo-missing:9.9" {
		t.Errorf("error %v does not unwrap to *MissingImageError for the ref", err)
	}
	list, _ := p.Instances(context.Background(), demotest.Service(t))
	if len(list) != 0 {
		t.Errorf("a failed launch left instances behind: %+v", list)
	}
}

func TestUnreachableDockerHostSaysWhichHostAndWhatToDo(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	_, err := docker.New(context.Background())
	if err == nil {
		t.Fatal("New with DOCKER_HOST=unix:///nonexistent.sock succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		"Docker host unix:///nonexistent.sock does not answer: ",
		"no such file or directory",
		"(is the Docker engine running? DOCKER_HOST selects another)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestListImagesGroupsTagsAndListsNewestFirst(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	ctx := context.Background()
	// A second tag on one image must join its entry, not make a new one.
	extra := demotest.Repo() + ":stable"
	if err := p.Client().ImageTag(ctx, images["1.1.0"], extra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Client().ImageRemove(context.Background(), extra, image.RemoveOptions{}) })

	list, err := p.ListImages(ctx, demotest.Repo())
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, img := range list {
		order = append(order, strings.Join(img.Tags, ","))
		if img.Repository != demotest.Repo() || img.Size <= 0 || img.Pushed.IsZero() || !strings.HasPrefix(img.Digest, "sha256:") {
			t.Errorf("image %+v lacks repository, size, time or digest", img)
		}
	}
	want := []string{"1.4.0-errors", "1.3.0-unhealthy", "1.2.0-crash", "1.1.0,stable", "1.0.0"}
	if !slices.Equal(order, want) {
		t.Errorf("ListImages order = %q, want %q", order, want)
	}
	info, err := p.ImageInfo(ctx, images["1.1.0"])
	if err != nil {
		t.Fatal(err)
	}
	if list[3].Digest != info.Digest {
		t.Errorf("ListImages digest %s != ImageInfo digest %s", list[3].Digest, info.Digest)
	}
	byID, err := p.ImageInfo(ctx, info.Digest)
	if err != nil || byID.Repository != demotest.Repo() || !slices.Contains(byID.Tags, "1.1.0") {
		t.Errorf("ImageInfo by ID = %+v, %v", byID, err)
	}
	if _, err := p.ImageInfo(ctx, demotest.Repo()+":0.0.404"); err == nil || !strings.Contains(err.Error(), "not on the Docker host") {
		t.Errorf("ImageInfo of a missing tag = %v", err)
	}
}

func TestLaunchOnANetworkAddressesTheContainerIP(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	ctx := context.Background()
	name := fmt.Sprintf("cutover-test-net-%d", os.Getpid())
	if _, err := p.Client().NetworkCreate(ctx, name, network.CreateOptions{Labels: demotest.Labels()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Client().NetworkRemove(context.Background(), name) })
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.1.0", Image: images["1.1.0"], Network: name})
	if strings.HasPrefix(in.Addr, "127.0.0.1:") || !strings.HasSuffix(in.Addr, ":8080") {
		t.Fatalf("address on network %s = %q, want <container IP>:8080", name, in.Addr)
	}
	demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 10*time.Second)
}

func TestDockerHealthcheckMustAgreeBeforeHealthy(t *testing.T) {
	p := demotest.Docker(t)
	ctx := context.Background()
	labels := demotest.Labels()
	labels["cutover.test.case"] = "hc"
	refs, err := demo.BuildImages(ctx, p.Client(), demotest.Binary(t), demotest.Repo()+"-hc", labels,
		[]demo.Variant{{Tag: "1.5.0", HealthCheck: true}})
	t.Cleanup(func() {
		if _, err := demo.RemoveImages(context.Background(), p.Client(), map[string]string{"cutover.test.case": "hc", "cutover.test.pid": labels["cutover.test.pid"]}); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.5.0", Image: refs["1.5.0"]})
	// Docker runs the first check a second after start; until then it says
	// "starting", and so must we even once the HTTP probe passes.
	first, err := p.Health(ctx, in.ID, healthz)
	if err != nil {
		t.Fatal(err)
	}
	if first.Docker != "starting" || first.Status == engine.HealthHealthy {
		t.Errorf("first verdict = %+v, want Docker starting and not healthy", first)
	}
	h := demotest.WaitHealth(t, p, in.ID, healthz, engine.HealthHealthy, 15*time.Second)
	if h.Docker != "healthy" {
		t.Errorf("healthy verdict with Docker HEALTHCHECK state %q, want healthy", h.Docker)
	}
}

// BenchmarkLaunchToHealthy measures launching a demo instance until its
// first healthy probe (probing every 10ms), and stopping it.
func BenchmarkLaunchToHealthy(b *testing.B) {
	images := demotest.Images(b)
	p := demotest.Docker(b)
	ctx := context.Background()
	svc := fmt.Sprintf("b%d-launch", os.Getpid())
	var stop time.Duration
	for b.Loop() {
		in, err := p.Launch(ctx, engine.InstanceSpec{Service: svc, Version: "1.1.0", Image: images["1.1.0"], Port: demo.DefaultPort, Labels: demotest.Labels()})
		if err != nil {
			b.Fatal(err)
		}
		for {
			h, err := p.Health(ctx, in.ID, healthz)
			if err != nil {
				b.Fatal(err)
			}
			if h.Status == engine.HealthHealthy {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		if err := p.Stop(ctx, in.ID, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		stop += time.Since(start)
	}
	b.ReportMetric(float64(stop.Milliseconds())/float64(b.N), "stop-ms/op")
}

// Docker restarts a crashed instance on its own (unless-stopped); it must
// come back on the address the router has for it.
func TestRestartedInstanceKeepsItsAddress(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	ctx := context.Background()
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: demotest.Service(t), Version: "1.0.0", Image: images["1.0.0"]})
	timeout := 1
	if err := p.Client().ContainerRestart(ctx, in.ID, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	after, err := p.Instance(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Addr != in.Addr {
		t.Fatalf("address after a restart %s, was %s: the router would send traffic to a dead port", after.Addr, in.Addr)
	}
	demotest.WaitHealth(t, p, in.ID, engine.HealthCheck{Path: "/healthz", Timeout: time.Second}, engine.HealthHealthy, 10*time.Second)
}

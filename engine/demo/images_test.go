package demo_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/demo/demotest"
)

func TestMain(m *testing.M) { os.Exit(demotest.Main(m)) }

func TestBuildRefusesADynamicBinary(t *testing.T) {
	const dynamic = "/bin/ls" // Debian's ls is dynamically linked
	if _, err := os.Stat(dynamic); err != nil {
		demotest.Missing(t, "%s to stand for a dynamic binary: %v", dynamic, err)
	}
	_, err := demo.BuildImages(context.Background(), nil, dynamic, "x", nil, demo.Variants())
	if err == nil || !strings.Contains(err.Error(), "build cutover with CGO_ENABLED=0 to use the demo") {
		t.Errorf("BuildImages with %s = %v, want the CGO_ENABLED=0 advice", dynamic, err)
	}
	if err := demo.CheckStatic("/etc/hostname"); err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
		t.Errorf("CheckStatic of a text file = %v", err)
	}
}

func TestChangesMakeTheDemoImageConfig(t *testing.T) {
	got := demo.Changes(demo.Variant{Tag: "1.4.0-errors", Env: map[string]string{"DEMO_ERROR_RATE": "0.3"}}, map[string]string{"cutover.test": "1"})
	want := []string{
		`ENV "DEMO_ERROR_RATE"="0.3" "DEMO_VERSION"="1.4.0-errors"`,
		"EXPOSE 8080",
		`LABEL "cutover.demo"="1" "cutover.test"="1"`,
		`ENTRYPOINT ["/cutover","demo-app"]`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes = %q\nwant      %q", got, want)
	}
	if hc := demo.Changes(demo.Variant{Tag: "x", HealthCheck: true}, nil); !strings.HasPrefix(hc[len(hc)-2], "HEALTHCHECK --interval=1s") {
		t.Errorf("HealthCheck variant changes = %q, want a HEALTHCHECK", hc)
	}
	for _, v := range demo.Variants() {
		if v.HealthCheck {
			t.Errorf("standard variant %s has a HEALTHCHECK, which delays every launch by its interval", v.Tag)
		}
	}
}

func TestErrorsImageFailsThirtyPercentAfterTwentyRequests(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: "demotest-errors", Version: "1.4.0", Image: images["1.4.0-errors"]})
	demotest.WaitHealth(t, p, in.ID, engine.HealthCheck{Path: "/healthz", Timeout: time.Second}, engine.HealthHealthy, 10*time.Second)
	var fails20, fails100 int
	for i := 1; i <= 120; i++ {
		resp, err := http.Get("http://" + in.Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if v := resp.Header.Get("X-Demo-Version"); v != "1.4.0-errors" {
			t.Fatalf("X-Demo-Version = %q", v)
		}
		if resp.StatusCode == 500 {
			if i <= 20 {
				fails20++
			} else {
				fails100++
			}
		}
	}
	if fails20 != 0 || fails100 != 30 {
		t.Errorf("500s: %d in the first 20 requests (want 0), %d in the next 100 (want 30)", fails20, fails100)
	}
}

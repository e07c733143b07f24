package instances

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestNameUsesOnlyDockerNameCharacters(t *testing.T) {
	name := Name("web/api", "1.0.0+build 7")
	if !strings.HasPrefix(name, "cutover-web-api-1.0.0-build-7-") || len(name) != len("cutover-web-api-1.0.0-build-7-")+6 {
		t.Errorf("name = %q", name)
	}
	if Name("a", "1") == Name("a", "1") {
		t.Error("two names for the same service and version are equal")
	}
}

func TestExtraLabelsCannotForgeTheInstancesOwnLabels(t *testing.T) {
	spec := engine.InstanceSpec{Service: "web", Version: "1.1.0", ReleaseID: "r1",
		Labels: map[string]string{engine.LabelVersion: "9.9.9", engine.LabelTest: "1"}}
	labels := Labels(spec, "sha256:d")
	var in engine.Instance
	FromLabels(&in, labels)
	if in.Service != "web" || in.Version != "1.1.0" || in.ReleaseID != "r1" || in.Digest != "sha256:d" {
		t.Errorf("instance from labels %+v, want web 1.1.0 r1 sha256:d", in)
	}
	if labels[engine.LabelManaged] != "true" || labels[engine.LabelTest] != "1" {
		t.Errorf("labels %v lack the managed mark or the extra label", labels)
	}
}

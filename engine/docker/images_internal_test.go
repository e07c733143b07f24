package docker

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitRefKeepsRegistryPortInRepository(t *testing.T) {
	for ref, want := range map[string][2]string{
		"cutover-demo:1.0.0":                        {"cutover-demo", "1.0.0"},
		"127.0.0.1:5000/team/web:v2":                {"127.0.0.1:5000/team/web", "v2"},
		"127.0.0.1:5000/team/web":                   {"127.0.0.1:5000/team/web", ""},
		"web@sha256:abc":                            {"web", ""},
		"123.dkr.ecr.us-east-1.amazonaws.com/web:1": {"123.dkr.ecr.us-east-1.amazonaws.com/web", "1"},
	} {
		repo, tag := splitRef(ref)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", ref, repo, tag, want[0], want[1])
		}
	}
}

func TestDigestPrefersRegistryDigestOfTheRepository(t *testing.T) {
	got := digestOf("sha256:local", []string{"other@sha256:o", "127.0.0.1:5000/web@sha256:r"}, "127.0.0.1:5000/web")
	if got != "sha256:r" {
		t.Errorf("digest = %q, want the registry digest of the repository", got)
	}
	if got := digestOf("sha256:local", nil, "web"); got != "sha256:local" {
		t.Errorf("digest without registry digests = %q, want the image ID", got)
	}
}

func TestPullStreamErrorsAreSurfaced(t *testing.T) {
	stream := `{"status":"Pulling from web","id":"1.0"}
{"status":"Downloading","progress":"[==>  ] 1MB/2MB","id":"abc"}
{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}
`
	var lines []string
	err := ReadStream(strings.NewReader(stream), func(s string) { lines = append(lines, s) })
	if err == nil || err.Error() != "unauthorized: authentication required" {
		t.Errorf("error = %v, want the stream's error", err)
	}
	if want := []string{"1.0: Pulling from web", "abc: Downloading [==>  ] 1MB/2MB"}; !slices.Equal(lines, want) {
		t.Errorf("progress = %q, want %q", lines, want)
	}
}

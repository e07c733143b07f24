package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/config"
)

// runCutover runs the root command with args and returns stdout, stderr and
// the exit code main would use.
func runCutover(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.Execute()
	code = exitOK
	if err != nil {
		code = exitError
		var ce *exitCodeError
		if errors.As(err, &ce) {
			code = ce.code
			if ce.err.Error() != "" {
				errb.WriteString(err.Error())
			}
		}
	}
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheckPrintsTheEffectiveConfigThatReparses(t *testing.T) {
	path := writeFile(t, "cutover.yaml", "services:\n  web:\n    image: demo\n    replicas: 3\n")
	stdout, stderr, code := runCutover(t, "config", "check", "--config", path)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"replicas: 3\n", "type: rolling\n", "admin: unix:.cutover/router-main.sock\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("effective config lacks %q:\n%s", want, stdout)
		}
	}
	orig, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Parse(path, []byte(stdout))
	if err != nil {
		t.Fatalf("check's output does not parse: %v", err)
	}
	a, _ := orig.Marshal()
	b, _ := again.Marshal()
	if !bytes.Equal(a, b) {
		t.Errorf("check's output is not the same config:\n%s\n---\n%s", a, b)
	}
}

func TestConfigCheckReportsEveryErrorOnStderrAndExits1(t *testing.T) {
	path := writeFile(t, "cutover.yaml", "services:\n  web:\n    image: demo\n    replicas: 0\n    health: {path: x}\n    strategy: {type: ring}\n")
	stdout, stderr, code := runCutover(t, "config", "check", "-c", path)
	if code != exitError {
		t.Errorf("exit code = %d, want %d", code, exitError)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	want := path + `:4: services.web.replicas: must be at least 1, got 0
` + path + `:5: services.web.health.path: must start with '/', got "x"
` + path + `:6: services.web.strategy.type: want rolling, bluegreen or canary, got "ring"
`
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
	}
}

func TestConfigCheckTakesTheFileAsAnArgument(t *testing.T) {
	path := writeFile(t, "other.yaml", "services:\n  api: {image: api}\n")
	stdout, _, code := runCutover(t, "config", "check", path)
	if code != exitOK || !strings.Contains(stdout, "  api:\n") {
		t.Errorf("exit %d, stdout:\n%s", code, stdout)
	}
}

func TestConfigCheckOfAMissingFileExits1(t *testing.T) {
	stdout, stderr, code := runCutover(t, "config", "check", "-c", filepath.Join(t.TempDir(), "none.yaml"))
	if code != exitError || stdout != "" || !strings.Contains(stderr, "no such file") {
		t.Errorf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

func TestConfigCheckAcceptsTheShippedExamples(t *testing.T) {
	for _, f := range []string{"../../config/example.yaml", "../../config/testdata/minimal.yaml"} {
		if _, stderr, code := runCutover(t, "config", "check", "-c", f); code != exitOK {
			t.Errorf("%s: exit %d: %s", f, code, stderr)
		}
	}
}

package demotest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// StartLogged starts cmd with its output in the file log, and kills it
// when the test ends; a failed test shows the log's last lines under name.
func StartLogged(t testing.TB, cmd *exec.Cmd, name, log string) {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			t.Logf("%s log:\n%s", name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
}

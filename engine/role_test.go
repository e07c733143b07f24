package engine_test

import (
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestRolesAllowWhatTheirNameSays(t *testing.T) {
	want := map[engine.Role]map[engine.Command]bool{
		engine.RoleViewer:   {},
		engine.RoleOperator: {engine.CmdApprove: true, engine.CmdPause: true, engine.CmdResume: true, engine.CmdPromote: true, engine.CmdRollback: true},
		engine.RoleDeployer: {engine.CmdApprove: true, engine.CmdPause: true, engine.CmdResume: true, engine.CmdPromote: true, engine.CmdRollback: true, engine.CmdAbort: true},
		"":                  {}, // no role: nothing
		"admin":             {},
	}
	for role, cmds := range want {
		for _, c := range allCommands {
			if got := role.Permits(c); got != cmds[c] {
				t.Errorf("%q.Permits(%s) = %v, want %v", role, c, got, cmds[c])
			}
		}
		if got := role.MayRelease(); got != (role == engine.RoleDeployer) {
			t.Errorf("%q.MayRelease() = %v", role, got)
		}
	}
	for _, r := range engine.Roles() {
		if got, err := engine.ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	if _, err := engine.ParseRole("Operator"); err == nil {
		t.Error("ParseRole accepted a role with a capital letter")
	}
}

func TestActorSaysWhichKeyGaveTheCommand(t *testing.T) {
	local := engine.Actor{User: "alice", Host: "ops", Remote: "10.0.0.5"}
	if got := local.String(); got != "alice@ops (from 10.0.0.5)" {
		t.Errorf("local actor = %q", got)
	}
	ssh := engine.Actor{User: "alice", Host: "ops", Remote: "127.0.0.1:4711", Login: "cutover",
		Key: "alice@laptop", Fingerprint: "SHA256:abc", Role: engine.RoleOperator}
	if got, want := ssh.String(), "alice (operator, key alice@laptop SHA256:abc, ssh cutover@ops from 127.0.0.1:4711)"; got != want {
		t.Errorf("ssh actor = %q, want %q", got, want)
	}
	if got := (engine.Actor{}).String(); got != "unknown" {
		t.Errorf("empty actor = %q", got)
	}
}

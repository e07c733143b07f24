package engine

import "fmt"

// Role is what a person may do to a service's releases, in the consoles
// `cutover serve` opens for SSH keys. The console hides what a role may
// not do, and the server refuses it anyway.
type Role string

// Roles, each allowed everything the one before it is.
const (
	// RoleViewer sees everything and changes nothing.
	RoleViewer Role = "viewer"
	// RoleOperator drives releases that run: approve, pause, resume,
	// promote and roll back (an emergency rollback too).
	RoleOperator Role = "operator"
	// RoleDeployer also starts releases and resumes interrupted ones.
	RoleDeployer Role = "deployer"
)

// Roles lists the roles from the least allowed.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleDeployer} }

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q: want viewer, operator or deployer", s)
}

// Permits reports whether the role may give cmd to a running release.
// Abort (stop the release where it is and leave it) belongs with starting
// releases: it leaves a release for someone to resume.
func (r Role) Permits(cmd Command) bool {
	switch r {
	case RoleDeployer:
		return true
	case RoleOperator:
		return cmd != CmdAbort
	}
	return false
}

// MayRelease reports whether the role may start a release or resume an
// interrupted one.
func (r Role) MayRelease() bool { return r == RoleDeployer }

// RoleError says a person's role does not allow what they asked.
type RoleError struct {
	Who  Actor
	Role Role
	What string // "approve", "start a release"
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("%s may not %s: role %s", e.Who.User, e.What, e.Role)
}

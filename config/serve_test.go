package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/engine"
)

// pubKey makes a fresh ed25519 public key in authorized_keys form.
func pubKey(t *testing.T, comment string) (string, gossh.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line, k
}

func TestServeSectionAsTheIssueWritesIt(t *testing.T) {
	alice, aliceKey := pubKey(t, "alice@laptop")
	bob, bobKey := pubKey(t, "")
	c := mustParse(t, svc("image: a")+`serve:
  listen: 127.0.0.1:2222
  users:
    alice: {role: deployer, keys: ["`+alice+`"]}
    bob:   {role: viewer,   keys: ["`+bob+`"]}
`)
	if c.Serve.Listen != "127.0.0.1:2222" || c.Serve.IdleTimeout != 30*time.Minute {
		t.Errorf("serve = %+v", c.Serve)
	}
	if got, want := c.Resolve(c.Serve.HostKey), filepath.Join(c.StateDir(), "serve", "ssh_host_ed25519_key"); got != want {
		t.Errorf("host key %s, want it in the state directory (%s)", got, want)
	}
	keys, err := c.ServeKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys = %+v", keys)
	}
	a, b := keys[0], keys[1]
	if a.User != "alice" || a.Role != engine.RoleDeployer || a.Name != "alice@laptop" || !keysEqual(a.Key, aliceKey) {
		t.Errorf("alice's key = %+v", a)
	}
	if b.User != "bob" || b.Role != engine.RoleViewer || b.Name != "bob key 1" || !keysEqual(b.Key, bobKey) {
		t.Errorf("bob's key = %+v", b)
	}
	if !strings.HasPrefix(a.Fingerprint(), "SHA256:") {
		t.Errorf("fingerprint %q", a.Fingerprint())
	}
	// The effective config says it all and reads back the same.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen: 127.0.0.1:2222", "idle_timeout: 30m", "role: deployer", "host_key: .cutover/serve/ssh_host_ed25519_key"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
	if _, err := Parse("cutover.yaml", out); err != nil {
		t.Errorf("effective config does not read back: %v", err)
	}
}

func TestServeDefaultsListenOnLoopbackAndGiveViewerOnly(t *testing.T) {
	k, _ := pubKey(t, "carol@desk")
	c := mustParse(t, svc("image: a")+"serve:\n  users:\n    carol:\n      keys: [\""+k+"\"]\n")
	if c.Serve.Listen != DefaultServeListen || !strings.HasPrefix(c.Serve.Listen, "127.0.0.1:") {
		t.Errorf("default listen %q, want loopback", c.Serve.Listen)
	}
	if r := c.Serve.Users["carol"].Role; r != engine.RoleViewer {
		t.Errorf("a user without a role is %q, want viewer", r)
	}
	c = mustParse(t, svc("image: a")+"serve:\n  idle_timeout: 0s\n")
	if c.Serve.IdleTimeout != 0 {
		t.Errorf("idle_timeout 0s became %v; 0 turns it off", c.Serve.IdleTimeout)
	}
}

func TestServeProblemsNameTheirLine(t *testing.T) {
	k, _ := pubKey(t, "x@y")
	head := svc("image: a") + "serve:\n" // serve: is line 4
	cases := []struct{ name, src, want string }{
		{"listen", head + "  listen: 2222\n",
			`cutover.yaml:5: serve.listen: want host:port, got "2222"`},
		{"role", head + "  users:\n    alice: {role: admin, keys: [\"" + k + "\"]}\n",
			`cutover.yaml:6: serve.users.alice.role: want viewer, operator or deployer, got "admin"`},
		{"no keys", head + "  users:\n    alice: {role: operator}\n",
			`cutover.yaml:6: serve.users.alice.keys: at least one public key is required`},
		{"bad key", head + "  users:\n    alice:\n      keys: [\"ssh-ed25519 nonsense\"]\n",
			`cutover.yaml:7: serve.users.alice.keys[0]: not a public key`},
		{"options", head + "  users:\n    alice:\n      keys: ['no-pty " + k + "']\n",
			`cutover.yaml:7: serve.users.alice.keys[0]: options (no-pty) are for the authorized_keys file`},
		{"shared key", head + "  users:\n    alice:\n      keys: [\"" + k + "\"]\n    bob:\n      keys: [\"" + k + "\"]\n",
			`serve.users.bob.keys[0]: key SHA256:`},
		{"unknown key", head + "  lisen: 127.0.0.1:22\n",
			`cutover.yaml:5: serve.lisen: unknown key; did you mean "listen"?`},
		{"negative idle", head + "  idle_timeout: -1m\n",
			`cutover.yaml:5: serve.idle_timeout: must not be negative`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrors(t, tc.src)
			found := false
			for _, e := range errs {
				found = found || strings.Contains(e, tc.want)
			}
			if !found {
				t.Errorf("errors %q lack %q", errs, tc.want)
			}
		})
	}
}

func TestAuthorizedKeysFileGivesRolesAndRefusesWhatItDoesNotKnow(t *testing.T) {
	dir := t.TempDir()
	carol, carolKey := pubKey(t, "carol@desk")
	dave, _ := pubKey(t, "dave@ci")
	erin, _ := pubKey(t, "")
	file := filepath.Join(dir, "keys")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# people\n\nrole=\"operator\",user=\"carol\" " + carol + "\n" + dave + "\n")
	keys, err := ReadAuthorizedKeys(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].User != "carol" || keys[0].Role != engine.RoleOperator || !keysEqual(keys[0].Key, carolKey) ||
		keys[0].From != file+":3" {
		t.Fatalf("carol's key = %+v", keys[0])
	}
	if keys[1].User != "dave@ci" || keys[1].Role != engine.RoleViewer {
		t.Errorf("a key with no options is %q as %q; want its comment as the user, and viewer", keys[1].User, keys[1].Role)
	}

	write(dave + "\ncommand=\"/bin/sh\" " + dave + "\nrole=\"root\" " + dave + "\n" + erin + "\n")
	_, err = ReadAuthorizedKeys(file)
	for _, want := range []string{file + `:2: option "command=\"/bin/sh\"" is not one cutover serve knows`,
		file + `:3: unknown role "root"`, file + `:4: say whose key this is`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}

	// The same key in the config and the file belongs to two people.
	write("user=\"carol2\" " + carol + "\n")
	c := mustParse(t, svc("image: a")+"serve:\n  authorized_keys: "+file+"\n  users:\n    carol: {keys: [\""+carol+"\"]}\n")
	if _, err := c.ServeKeys(); err == nil || !strings.Contains(err.Error(), file+":1: key SHA256:") || !strings.Contains(err.Error(), "already carol's") {
		t.Errorf("a key given to two people: %v", err)
	}
}

func keysEqual(a, b gossh.PublicKey) bool { return string(a.Marshal()) == string(b.Marshal()) }

package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/engine"
)

// Serve is how `cutover serve` serves the console over SSH: where it
// listens, who may come in with which key, and what each person may do.
type Serve struct {
	// Listen is the SSH address; loopback unless the file says otherwise.
	Listen string `yaml:"listen"`
	// IdleTimeout ends a session nobody typed in for this long; 0 never.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// HostKey is the server's private host key, made on first start.
	HostKey string `yaml:"host_key"`
	// AuthorizedKeys is an authorized_keys file whose lines carry
	// role="…" and user="…" options, read when serve starts (and on SIGHUP).
	AuthorizedKeys string `yaml:"authorized_keys,omitempty"`
	// Users are the people who may connect, by name.
	Users map[string]*User `yaml:"users,omitempty"`
}

// User is a person who may connect to `cutover serve`, with the role their
// keys give them.
type User struct {
	Name string      `yaml:"-"`
	Role engine.Role `yaml:"role"`
	// Keys are public keys in authorized_keys form ("ssh-ed25519 AAAA…
	// alice@laptop"); the comment names the key in the audit.
	Keys []string `yaml:"keys"`
}

// Serve defaults: loopback only, and a session idle for half an hour ends.
const (
	DefaultServeListen      = "127.0.0.1:2222"
	DefaultServeIdleTimeout = 30 * time.Minute
)

// setDefaults is a user's role until the file says otherwise: the least.
func (u *User) setDefaults() { u.Role = engine.RoleViewer }

// applyServeDefaults fills serve's defaults; the host key lives in the
// state directory, never in the working directory.
func applyServeDefaults(d *decoder, c *Config) {
	s := &c.Serve
	if s.Listen == "" {
		s.Listen = DefaultServeListen
	}
	if !d.present("serve.idle_timeout") {
		s.IdleTimeout = DefaultServeIdleTimeout
	}
	if s.HostKey == "" {
		s.HostKey = filepath.Join(c.RawStateDir, "serve", "ssh_host_ed25519_key")
	}
	for name, u := range s.Users {
		u.Name = name
		if u.Role == "" {
			u.Role = engine.RoleViewer
		}
	}
}

// userRE is what a person's name looks like: it ends up in the audit.
var userRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// serve checks the serve section: the address, every user's role and keys,
// and that no key belongs to two people.
func (v validator) serve(c *Config) {
	s := c.Serve
	v.hostPort("serve.listen", s.Listen)
	owner := map[string]string{}
	for _, name := range sortedKeys(s.Users) {
		u := s.Users[name]
		p := "serve.users." + name
		if !userRE.MatchString(name) {
			v.errorf(p, "name %q must be letters, digits and . _ @ -, starting with a letter or digit (at most 64)", name)
		}
		if _, err := engine.ParseRole(string(u.Role)); err != nil {
			v.errorf(p+".role", "want viewer, operator or deployer, got %q", u.Role)
		}
		if len(u.Keys) == 0 {
			v.errorf(p+".keys", "at least one public key is required (a line of ~/.ssh/id_ed25519.pub)")
		}
		for i, line := range u.Keys {
			kp := indexPath(p+".keys", i)
			key, _, opts, _, err := gossh.ParseAuthorizedKey([]byte(line))
			switch {
			case err != nil:
				v.errorf(kp, "not a public key (want a line such as \"ssh-ed25519 AAAA… alice@laptop\"): %v", err)
				continue
			case len(opts) > 0:
				v.errorf(kp, "options (%s) are for the authorized_keys file; here the user's role applies", strings.Join(opts, ","))
			}
			id := string(key.Marshal())
			if other, ok := owner[id]; ok {
				v.errorf(kp, "key %s is already %s's: a key belongs to one person", gossh.FingerprintSHA256(key), other)
				continue
			}
			owner[id] = name
		}
	}
}

// AuthorizedKey is a public key allowed into `cutover serve`: whose it is,
// what they may do and what the audit calls it.
type AuthorizedKey struct {
	User string
	Role engine.Role
	// Name is the key's comment ("alice@laptop"), or "USER key N" when it
	// has none.
	Name string
	Key  gossh.PublicKey
	// From says where the key was written: "serve.users.alice.keys[0]"
	// or "keys.txt:3".
	From string
	line int // in the authorized_keys file
}

// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l prints it.
func (k AuthorizedKey) Fingerprint() string { return gossh.FingerprintSHA256(k.Key) }

// ServeKeys lists every key allowed into `cutover serve`: the users' keys
// in the config, then the lines of serve.authorized_keys, which it reads
// now. A key written twice, or a line it cannot read, is an error naming
// the file and line.
func (c *Config) ServeKeys() ([]AuthorizedKey, error) {
	var out []AuthorizedKey
	seen := map[string]AuthorizedKey{}
	var errs Errors
	add := func(k AuthorizedKey, file string, line int) {
		id := string(k.Key.Marshal())
		if prev, ok := seen[id]; ok {
			errs = append(errs, Error{File: file, Line: line, Msg: fmt.Sprintf("key %s is already %s's (%s): a key belongs to one person", k.Fingerprint(), prev.User, prev.From)})
			return
		}
		seen[id] = k
		out = append(out, k)
	}
	for _, name := range sortedKeys(c.Serve.Users) {
		u := c.Serve.Users[name]
		for i, line := range u.Keys {
			key, comment, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				return nil, fmt.Errorf("%s: serve.users.%s.keys[%d]: %w", c.File, name, i, err)
			}
			add(AuthorizedKey{User: name, Role: u.Role, Name: keyName(comment, name, i), Key: key,
				From: fmt.Sprintf("serve.users.%s.keys[%d]", name, i)}, c.File, 0)
		}
	}
	if c.Serve.AuthorizedKeys != "" {
		path := c.Resolve(c.Serve.AuthorizedKeys)
		keys, err := ReadAuthorizedKeys(path)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			add(k, path, k.line)
		}
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return out, nil
}

func keyName(comment, user string, i int) string {
	if comment = strings.TrimSpace(comment); comment != "" {
		return comment
	}
	return fmt.Sprintf("%s key %d", user, i+1)
}

// ReadAuthorizedKeys reads an authorized_keys file for `cutover serve`.
// Each line is a public key with options saying whose it is and what they
// may do:
//
//	role="operator",user="carol" ssh-ed25519 AAAA… carol@desk
//
// user defaults to the key's comment, role to viewer. Other options
// (command=, no-pty, …) are refused rather than silently ignored. Every
// problem is reported with its line.
func ReadAuthorizedKeys(path string) ([]AuthorizedKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("serve.authorized_keys: %w", err)
	}
	var out []AuthorizedKey
	var errs Errors
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, Error{File: path, Line: n, Msg: fmt.Sprintf(format, args...)})
		}
		key, comment, opts, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			bad("not a public key line: %v", err)
			continue
		}
		k := AuthorizedKey{Role: engine.RoleViewer, Key: key, From: fmt.Sprintf("%s:%d", path, n), line: n}
		for _, o := range opts {
			name, val, _ := strings.Cut(o, "=")
			val = strings.Trim(val, `"`)
			switch strings.ToLower(name) {
			case "role":
				r, err := engine.ParseRole(val)
				if err != nil {
					bad("%v", err)
				}
				k.Role = r
			case "user":
				k.User = val
			default:
				bad("option %q is not one cutover serve knows; want role=\"viewer|operator|deployer\" and user=\"NAME\"", o)
			}
		}
		if k.User == "" {
			k.User = strings.TrimSpace(comment)
		}
		if !userRE.MatchString(k.User) {
			bad("say whose key this is with user=\"NAME\" (letters, digits and . _ @ -), or a comment naming them; got %q", k.User)
			continue
		}
		k.Name = keyName(comment, k.User, 0)
		out = append(out, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("serve.authorized_keys %s: %w", path, err)
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return out, nil
}

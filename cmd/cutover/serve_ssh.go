package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/activeterm"
	"charm.land/wish/v2/bubbletea"
	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/tui"
)

// sshServer serves one console per SSH session over the shared core. Only
// public keys get in, and the key a session authenticated with decides
// who it is and what it may do.
type sshServer struct {
	ssh  *ssh.Server
	core *backendCore
	acc  atomic.Pointer[access]
	idle time.Duration
	log  *slog.Logger
	host string

	mu       sync.Mutex
	sessions map[*session]struct{}
	stopping atomic.Bool
}

// session is one SSH session's console.
type session struct {
	who       engine.Actor
	prog      *tea.Program
	opened    time.Time
	lastInput atomic.Int64 // unix nanoseconds of the last key, mouse or paste
	idled     atomic.Bool  // ended for being idle
}

type sessionKey struct{}

// sshHandshakeWithin bounds an SSH handshake, so a client that connects
// and says nothing does not hold a connection.
const sshHandshakeWithin = 30 * time.Second

func newSSHServer(core *backendCore, acc *access, hostKey gossh.Signer, idle time.Duration, log *slog.Logger) (*sshServer, error) {
	s := &sshServer{core: core, idle: idle, log: log, host: hostname(), sessions: map[*session]struct{}{}}
	s.acc.Store(acc)
	core.audit = func(who engine.Actor, what string) {
		log.Warn("refused: the role does not allow it", "who", who.String(), "what", what)
	}
	srv, err := wish.NewServer(
		func(srv *ssh.Server) error { srv.AddHostKey(hostKey); return nil },
		wish.WithPublicKeyAuth(s.authorize),
		wish.WithVersion("cutover"),
		wish.WithMiddleware(
			s.console,
			activeterm.Middleware(),
			s.track,
		),
	)
	if err != nil {
		return nil, err
	}
	srv.HandshakeTimeout = sshHandshakeWithin
	srv.ConnectionFailedCallback = func(c net.Conn, err error) {
		log.Info("ssh connection refused", "remote", c.RemoteAddr().String(), "reason", err.Error())
	}
	s.ssh = srv
	return s, nil
}

// authorize lets a key in if it belongs to someone. It decides nothing
// else: the session looks the key up again from what it authenticated
// with (a client may offer several keys before it signs with one).
func (s *sshServer) authorize(ctx ssh.Context, key ssh.PublicKey) bool {
	_, ok := s.acc.Load().lookup(key)
	if !ok {
		s.log.Info("unknown key", "remote", ctx.RemoteAddr().String(), "login", ctx.User(), "key", gossh.FingerprintSHA256(key))
	}
	return ok
}

// identify says who a session is, from the key it authenticated with.
func (s *sshServer) identify(sess ssh.Session) (engine.Actor, bool) {
	k, ok := s.acc.Load().lookup(sess.PublicKey())
	if !ok {
		return engine.Actor{}, false
	}
	return engine.Actor{User: k.User, Host: s.host, Remote: sess.RemoteAddr().String(), Login: sess.User(),
		Key: k.Name, Fingerprint: k.Fingerprint(), Role: k.Role}, true
}

// program is the console of one session: the person's role, the session's
// own terminal size, colour profile and NO_COLOR, and an idle timer.
func (s *sshServer) program(sess ssh.Session) *tea.Program {
	if s.stopping.Load() {
		wish.Println(sess, "cutover serve is stopping; try again in a moment")
		return nil
	}
	who, ok := s.identify(sess)
	if !ok {
		// Only when the key was removed (SIGHUP) between login and here.
		wish.Println(sess, "cutover serve: this key is not allowed any more")
		return nil
	}
	ss := &session{who: who, opened: time.Now()}
	ss.lastInput.Store(time.Now().UnixNano())
	opts := tui.Options{Role: who.Role, Who: who.User, Shared: true, NoColor: envValue(sess.Environ(), "NO_COLOR") != ""}
	popts := append(bubbletea.MakeOptions(sess), tea.WithFilter(ss.filter))
	ss.prog = tui.NewProgram(sess.Context(), s.core.as(who, who.Role), opts, popts...)
	sess.Context().SetValue(sessionKey{}, ss)
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	s.log.Info("session opened", "who", who.String())
	go s.watchIdle(sess.Context(), ss)
	return ss.prog
}

// console runs a session's console to its end: the program quits when
// the person leaves, the connection drops or serve stops; a change of the
// client's window size reaches it as it happens.
func (s *sshServer) console(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		p := s.program(sess)
		if p == nil {
			next(sess)
			return
		}
		_, windows, _ := sess.Pty()
		ctx := sess.Context()
		go func() {
			for {
				select {
				case <-ctx.Done():
					p.Quit()
					return
				case w := <-windows:
					p.Send(tea.WindowSizeMsg{Width: w.Width, Height: w.Height})
				}
			}
		}()
		if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) {
			s.log.Error("console ended with an error", "error", err.Error())
		}
		p.Kill() // gives the terminal back even after a panic
		next(sess)
	}
}

// filter notes when the person last typed; wish's own filter turns a
// suspend (ctrl+z) into nothing, as there is no shell to go back to.
func (ss *session) filter(_ tea.Model, msg tea.Msg) tea.Msg {
	switch msg.(type) {
	case tea.SuspendMsg:
		return tea.ResumeMsg{}
	case tea.KeyPressMsg, tea.MouseMsg, tea.PasteMsg:
		ss.lastInput.Store(time.Now().UnixNano())
	}
	return msg
}

// watchIdle ends a session nobody typed in for the idle timeout. The
// console redraws by itself, so the connection is never idle: only the
// person's input counts.
func (s *sshServer) watchIdle(ctx context.Context, ss *session) {
	if s.idle <= 0 {
		return
	}
	t := time.NewTicker(min(s.idle/4, 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(time.Unix(0, ss.lastInput.Load())) >= s.idle {
				ss.idled.Store(true)
				ss.prog.Quit()
				return
			}
		}
	}
}

// track says goodbye to a session whose console ended and logs it.
func (s *sshServer) track(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		next(sess)
		ss, _ := sess.Context().Value(sessionKey{}).(*session)
		if ss == nil {
			return
		}
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
		switch {
		case ss.idled.Load():
			wish.Printf(sess, "cutover: no key pressed for %s; disconnected. Releases run on in cutover serve.\r\n", s.idle)
		case s.stopping.Load():
			wish.Printf(sess, "cutover serve is stopping: releases stop where they are and can be resumed.\r\n")
		}
		s.log.Info("session closed", "who", ss.who.String(), "after", time.Since(ss.opened).Round(time.Second).String(), "idle", ss.idled.Load())
	}
}

// stop ends every session (each console quits and says why) and the
// server, within ctx.
func (s *sshServer) stop(ctx context.Context) {
	s.stopping.Store(true)
	s.mu.Lock()
	for ss := range s.sessions {
		ss.prog.Quit()
	}
	s.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.ssh.Shutdown(wait); err != nil {
		_ = s.ssh.Close()
	}
}

// reload reads the keys again (SIGHUP); a config that does not load
// leaves the keys as they were.
func (s *sshServer) reload(cmd *cobra.Command) {
	cfg, err := loadConfigFlag(cmd)
	if err == nil {
		var acc *access
		if acc, err = loadAccess(cfg); err == nil {
			s.acc.Store(acc)
			s.log.Info("keys reloaded", "keys", acc.summary())
			return
		}
	}
	why := err.Error()
	if why == "" {
		why = "the config has problems (printed above)"
	}
	s.log.Error("keys not reloaded; the old ones stay", "error", why)
}

// envValue is NAME's value in an environment list.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

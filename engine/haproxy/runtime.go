// Package haproxy drives HAProxy 2.6+ as a cutover router, over its runtime
// API (the stats socket at level admin): the route table becomes the
// dynamic servers of one HAProxy backend, cutover's own record of the
// table (epoch, writer, versions, exact weights) lives in an HAProxy map
// beside them, and every apply is read back from `show servers state`.
package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrRefused marks an answer of HAProxy's runtime API that is not the
// success its command expects; the error's text is HAProxy's message.
var ErrRefused = errors.New("HAProxy refused")

// commandTimeout bounds one runtime API command: a stuck HAProxy must not
// hang the engine, which renews its lease and takes commands meanwhile.
const commandTimeout = 10 * time.Second

// maxLine is the longest command line sent at once. HAProxy reads a
// command into one buffer (tune.bufsize, 16 kB by default); longer
// batches are split.
const maxLine = 8 << 10

// runtime is a client of one HAProxy runtime API socket. Each command
// opens its own connection: HAProxy answers and closes it, so the end of
// an answer is the end of the stream, with no prompt to parse.
type runtime struct {
	socket string
}

// run sends one command line (it may hold several commands separated by
// ';') and returns HAProxy's whole answer.
func (rt runtime) run(ctx context.Context, line string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", rt.socket)
	if err != nil {
		return "", fmt.Errorf("HAProxy runtime API at %s: %w", rt.socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if !strings.HasSuffix(line, "\n") {
		line += "\n" // a payload ends with its own empty line
	}
	if _, err := io.WriteString(conn, line); err != nil {
		return "", fmt.Errorf("HAProxy runtime API at %s: send %q: %w", rt.socket, firstWords(line), err)
	}
	out, err := io.ReadAll(bufio.NewReader(conn))
	if err != nil {
		return "", fmt.Errorf("HAProxy runtime API at %s: read the answer to %q: %w", rt.socket, firstWords(line), err)
	}
	return string(out), nil
}

// expect runs one command and checks its answer with ok; any other answer
// is HAProxy refusing, with its message.
func (rt runtime) expect(ctx context.Context, cmd string, ok func(answer string) bool) (string, error) {
	out, err := rt.run(ctx, cmd)
	if err != nil {
		return "", err
	}
	if !ok(strings.TrimSpace(out)) {
		return "", fmt.Errorf("%w %q: %s", ErrRefused, firstWords(cmd), oneLine(out))
	}
	return out, nil
}

// quiet runs commands whose success is an empty answer (set weight, set
// server state, add map, commit map...), several per connection, in
// order. HAProxy separates the answers of chained commands by blank lines,
// so any text at all is a refusal of one of them: the error quotes it.
func (rt runtime) quiet(ctx context.Context, cmds ...string) error {
	for len(cmds) > 0 {
		n, size := 0, 0
		for n < len(cmds) && (n == 0 || size+len(cmds[n])+1 <= maxLine) {
			size += len(cmds[n]) + 1
			n++
		}
		line := strings.Join(cmds[:n], ";")
		out, err := rt.run(ctx, line)
		if err != nil {
			return err
		}
		if msg := strings.TrimSpace(out); msg != "" {
			return fmt.Errorf("%w (running %s): %s", ErrRefused, describeBatch(cmds[:n]), oneLine(msg))
		}
		cmds = cmds[n:]
	}
	return nil
}

// info is what `show info` says about the HAProxy process.
type info struct {
	Version string
	PID     int
	Started time.Time // Start_time_sec: fixed for the life of the process
	Uptime  time.Duration
}

// identity tells two HAProxy processes apart: a restart (or a reload,
// which starts new workers) changes it, and with it every runtime change.
func (i info) identity() string {
	return fmt.Sprintf("pid %d started %s", i.PID, i.Started.UTC().Format(time.RFC3339))
}

func (rt runtime) info(ctx context.Context) (info, error) {
	out, err := rt.run(ctx, "show info")
	if err != nil {
		return info{}, err
	}
	var in info
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	in.Version = fields["Version"]
	in.PID, _ = strconv.Atoi(fields["Pid"])
	start, serr := strconv.ParseInt(fields["Start_time_sec"], 10, 64)
	up, _ := strconv.ParseInt(fields["Uptime_sec"], 10, 64)
	if in.PID == 0 || serr != nil {
		return info{}, fmt.Errorf("%w: `show info` at %s has no Pid or Start_time_sec (HAProxy 2.6 or later is needed): %s", ErrRefused, rt.socket, oneLine(out))
	}
	in.Started = time.Unix(start, 0)
	in.Uptime = time.Duration(up) * time.Second
	return in, nil
}

// server is one line of `show servers state`.
type server struct {
	Name    string
	Addr    string // srv_addr: the IP HAProxy connects to, "-" when it has none
	FQDN    string // srv_fqdn: a name HAProxy took instead of an IP, "-" when none
	Port    int
	OpState int // 0 stopped, 1 starting, 2 running, 3 stopping
	Admin   int // bit mask, see adminMaint and adminDrain
	Weight  int // srv_uweight: the weight set by `set weight`
}

// Admin state bits of `show servers state` (HAProxy's SRV_ADMF_*). The
// maintenance mask is FMAINT|IMAINT|RMAINT; CMAINT (0x04) only records
// that the server was declared disabled and stays set once enabled.
const (
	adminForcedMaint = 0x01
	adminMaint       = 0x23
	adminDrain       = 0x18
)

func (s server) maint() bool { return s.Admin&adminMaint != 0 }
func (s server) drain() bool { return s.Admin&adminDrain != 0 }

// hostPort is where HAProxy sends the server's requests, as host:port.
func (s server) hostPort() string {
	return net.JoinHostPort(s.Addr, strconv.Itoa(s.Port))
}

func (rt runtime) servers(ctx context.Context, backend string) ([]server, error) {
	out, err := rt.run(ctx, "show servers state "+backend)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "1" || !strings.HasPrefix(lines[1], "#") {
		return nil, fmt.Errorf("%w `show servers state %s`: %s", ErrRefused, backend, oneLine(out))
	}
	col := map[string]int{}
	for i, name := range strings.Fields(strings.TrimPrefix(lines[1], "#")) {
		col[name] = i
	}
	for _, name := range []string{"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_fqdn", "srv_port"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("`show servers state` has no column %s: %s", name, lines[1])
		}
	}
	var out2 []server
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) < len(col) || strings.HasPrefix(line, "#") || f[col["be_name"]] != backend {
			continue
		}
		s := server{Name: f[col["srv_name"]], Addr: f[col["srv_addr"]], FQDN: f[col["srv_fqdn"]]}
		s.Port, _ = strconv.Atoi(f[col["srv_port"]])
		s.OpState, _ = strconv.Atoi(f[col["srv_op_state"]])
		s.Admin, _ = strconv.Atoi(f[col["srv_admin_state"]])
		s.Weight, _ = strconv.Atoi(f[col["srv_uweight"]])
		out2 = append(out2, s)
	}
	return out2, nil
}

// stat is one server's line of `show stat`: cumulative counters since
// HAProxy started, and the current sessions.
type stat struct {
	Name                        string
	Cur, Queued                 int64 // scur, qcur
	Resp1xx, Resp2xx, Resp3xx   int64
	Resp4xx, Resp5xx, RespOther int64
	ConnErrors, RespErrors      int64 // econ, eresp
	Retries, Redispatches       int64 // wretr, wredis
	Down                        bool  // status DOWN: HAProxy's own checks hold it out
}

func (rt runtime) stats(ctx context.Context, backend string) (map[string]stat, error) {
	out, err := rt.run(ctx, "show stat "+backend+" 4 -1")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# pxname,") {
		return nil, fmt.Errorf("%w `show stat %s`: %s", ErrRefused, backend, oneLine(out))
	}
	col := map[string]int{}
	for i, name := range strings.Split(strings.TrimPrefix(lines[0], "# "), ",") {
		col[name] = i
	}
	num := func(f []string, name string) int64 {
		i, ok := col[name]
		if !ok || i >= len(f) {
			return 0
		}
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return n
	}
	res := map[string]stat{}
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if len(f) < 2 || f[col["pxname"]] != backend {
			continue
		}
		s := stat{Name: f[col["svname"]],
			Cur: num(f, "scur"), Queued: num(f, "qcur"),
			Resp1xx: num(f, "hrsp_1xx"), Resp2xx: num(f, "hrsp_2xx"), Resp3xx: num(f, "hrsp_3xx"),
			Resp4xx: num(f, "hrsp_4xx"), Resp5xx: num(f, "hrsp_5xx"), RespOther: num(f, "hrsp_other"),
			ConnErrors: num(f, "econ"), RespErrors: num(f, "eresp"),
			Retries: num(f, "wretr"), Redispatches: num(f, "wredis"),
		}
		if i, ok := col["status"]; ok && i < len(f) {
			s.Down = strings.HasPrefix(f[i], "DOWN")
		}
		res[s.Name] = s
	}
	return res, nil
}

// mapEntries reads the current version of a map: key → value.
func (rt runtime) mapEntries(ctx context.Context, file string) (map[string]string, error) {
	out, err := rt.run(ctx, "show map "+file)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || !strings.HasPrefix(f[0], "0x") {
			return nil, fmt.Errorf("%w `show map %s`: %s (is the map loaded? HAProxy's config must use it, see the README)", ErrRefused, file, oneLine(out))
		}
		v := ""
		if len(f) == 3 {
			v = f[2]
		}
		m[f[1]] = v
	}
	return m, nil
}

// replaceMap swaps the whole content of a map for entries in one step:
// prepare a new version, fill it, commit it. Readers see the old content
// or the new, never a mix.
func (rt runtime) replaceMap(ctx context.Context, file string, entries [][2]string) error {
	out, err := rt.expect(ctx, "prepare map "+file, func(a string) bool { return strings.HasPrefix(a, "New version created:") })
	if err != nil {
		return err
	}
	ver := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "New version created:"))
	if _, err := strconv.ParseUint(ver, 10, 32); err != nil {
		return fmt.Errorf("prepare map %s: unexpected answer %q", file, oneLine(out))
	}
	// The payload form adds many entries per command: "key value" lines
	// after "<<", ended by an empty line.
	for len(entries) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "add map @%s %s <<\n", ver, file)
		n := 0
		for n < len(entries) && (n == 0 || b.Len()+len(entries[n][0])+len(entries[n][1])+2 <= maxLine) {
			fmt.Fprintf(&b, "%s %s\n", entries[n][0], entries[n][1])
			n++
		}
		b.WriteString("\n")
		out, err := rt.run(ctx, b.String())
		if err != nil {
			return err
		}
		if msg := strings.TrimSpace(out); msg != "" {
			return fmt.Errorf("%w (add map @%s %s): %s", ErrRefused, ver, file, oneLine(msg))
		}
		entries = entries[n:]
	}
	return rt.quiet(ctx, "commit map @"+ver+" "+file)
}

// firstWords shortens a command for messages: its verb and object.
func firstWords(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) > 4 {
		f = f[:4]
	}
	return strings.Join(f, " ")
}

func describeBatch(cmds []string) string {
	if len(cmds) == 1 {
		return strconv.Quote(cmds[0])
	}
	return fmt.Sprintf("%d commands from %q", len(cmds), cmds[0])
}

// oneLine folds HAProxy's answer into one line for an error message,
// cut short: an unknown command answers with the whole help.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

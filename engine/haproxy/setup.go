package haproxy

import "fmt"

// Setup is what an HAProxy config needs for cutover to drive it: the
// frontend clients reach, the runtime API socket at admin level, a
// backend of cutover's own with a dynamic balance algorithm, and the map
// cutover keeps its record in (HAProxy loads a map only when its config
// uses it; the file must exist, empty is fine).
type Setup struct {
	Listen  string // frontend address, host:port
	Socket  string // runtime API socket path
	Backend string // backend name
	Map     string // map file path
}

// Config renders a complete HAProxy config for s, as `cutover demo` and
// the tests run it: HTTP mode, keep-alive to the servers, a failed
// connection retried on another server (as the built-in router does), no
// health checks (the engine checks health before it gives a backend
// weight).
func (s Setup) Config() string {
	return fmt.Sprintf(`# HAProxy for cutover: the backend's servers are cutover's route table,
# set at runtime through the socket below; keep them out of this file.
global
	stats socket %[2]s mode 600 level admin
	maxconn 4096

defaults
	mode http
	option http-keep-alive
	timeout connect 2s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 10s
	retries 2
	option redispatch 1

frontend cutover
	bind %[1]s
	default_backend %[3]s

backend %[3]s
	balance roundrobin
	# Loads cutover's map, where it keeps the table's epoch and versions.
	http-request set-var(txn.cutover_epoch) str(cutover.epoch),map(%[4]s,0)
`, s.Listen, s.Socket, s.Backend, s.Map)
}

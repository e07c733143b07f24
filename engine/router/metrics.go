package router

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/cutover/cutover/engine"
)

// writeMetrics renders st in the Prometheus text exposition format. It is
// built from the same snapshot as /v1/stats, so both always agree.
func writeMetrics(out io.Writer, st engine.Stats) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	m := metricWriter{w: w}

	m.family("cutover_router_table_epoch", "gauge", "Epoch of the applied route table.")
	m.sample("cutover_router_table_epoch", nil, float64(st.Epoch))
	m.family("cutover_router_no_backend_total", "counter", "Requests answered 503 because no backend was available.")
	m.sample("cutover_router_no_backend_total", nil, float64(st.NoBackend))

	m.family("cutover_router_backend_weight", "gauge", "Weight of each backend in the applied table (0 once removed).")
	for _, b := range st.Backends {
		m.sample("cutover_router_backend_weight", backendLabels(b), float64(b.Weight))
	}
	m.family("cutover_router_backend_in_flight", "gauge", "Requests in flight per backend.")
	for _, b := range st.Backends {
		m.sample("cutover_router_backend_in_flight", backendLabels(b), float64(b.InFlight))
	}
	m.family("cutover_router_backend_held_out", "gauge", "1 while a backend is skipped after a connection failure.")
	for _, b := range st.Backends {
		m.sample("cutover_router_backend_held_out", backendLabels(b), boolFloat(b.HeldOut))
	}
	m.family("cutover_router_backend_requests_total", "counter", "Attempts per backend by response class (proxy_error: no response).")
	for _, b := range st.Backends {
		m.classes("cutover_router_backend_requests_total", backendLabels(b), b.Totals)
	}
	m.family("cutover_router_backend_retries_total", "counter", "Requests replayed on another backend after this backend failed to connect.")
	for _, b := range st.Backends {
		m.sample("cutover_router_backend_retries_total", backendLabels(b), float64(b.Totals.Retries))
	}
	m.family("cutover_router_backend_request_duration_seconds", "histogram", "Request latency per backend.")
	for _, b := range st.Backends {
		m.histogram("cutover_router_backend_request_duration_seconds", backendLabels(b), b.Totals.Latency)
	}

	m.family("cutover_router_version_in_flight", "gauge", "Requests in flight per version.")
	for _, v := range st.Versions {
		m.sample("cutover_router_version_in_flight", versionLabels(v), float64(v.InFlight))
	}
	m.family("cutover_router_version_requests_total", "counter", "Attempts per version by response class (proxy_error: no response).")
	for _, v := range st.Versions {
		m.classes("cutover_router_version_requests_total", versionLabels(v), v.Totals)
	}
	m.family("cutover_router_version_retries_total", "counter", "Requests replayed elsewhere after a backend of this version failed to connect.")
	for _, v := range st.Versions {
		m.sample("cutover_router_version_retries_total", versionLabels(v), float64(v.Totals.Retries))
	}
	m.family("cutover_router_version_request_duration_seconds", "histogram", "Request latency per version.")
	for _, v := range st.Versions {
		m.histogram("cutover_router_version_request_duration_seconds", versionLabels(v), v.Totals.Latency)
	}
}

type label struct{ name, value string }

func backendLabels(b engine.BackendStats) []label {
	return []label{{"backend", b.ID}, {"version", b.Version}}
}

func versionLabels(v engine.VersionStats) []label {
	return []label{{"version", v.Version}}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type metricWriter struct {
	w *bufio.Writer
}

func (m metricWriter) family(name, typ, help string) {
	m.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

func (m metricWriter) sample(name string, labels []label, v float64) {
	m.w.WriteString(name)
	if len(labels) > 0 {
		m.w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				m.w.WriteByte(',')
			}
			m.w.WriteString(l.name + `="` + escapeLabel(l.value) + `"`)
		}
		m.w.WriteByte('}')
	}
	m.w.WriteByte(' ')
	m.w.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	m.w.WriteByte('\n')
}

func (m metricWriter) classes(name string, labels []label, t engine.Totals) {
	for _, c := range []struct {
		class string
		n     int64
	}{{"2xx", t.Class2xx}, {"3xx", t.Class3xx}, {"4xx", t.Class4xx}, {"5xx", t.Class5xx}, {"proxy_error", t.ProxyErrors}} {
		m.sample(name, append(labels[:len(labels):len(labels)], label{"class", c.class}), float64(c.n))
	}
}

// histogram writes cumulative _bucket series with le in seconds, then _sum
// and _count.
func (m metricWriter) histogram(name string, labels []label, h engine.Histogram) {
	for i, n := range h.Counts {
		le := "+Inf"
		if i < len(h.BoundsMs) {
			le = strconv.FormatFloat(h.BoundsMs[i]/1000, 'g', -1, 64)
		}
		m.sample(name+"_bucket", append(labels[:len(labels):len(labels)], label{"le", le}), float64(n))
	}
	m.sample(name+"_sum", labels, h.SumMs/1000)
	var count int64
	if len(h.Counts) > 0 {
		count = h.Counts[len(h.Counts)-1]
	}
	m.sample(name+"_count", labels, float64(count))
}

func escapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// Package instances holds what cutover's container platforms (plain Docker
// and Docker Swarm) do the same way: the labels that mark an instance and
// rebuild it after a crash, its name, the checks on a spec before launch,
// the HTTP health probe, and the words an operator reads about a crash.
// Nothing here talks to a Docker API.
package instances

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/cutover/cutover/engine"
)

// Validate reports what in spec no platform could launch.
func Validate(spec engine.InstanceSpec) error {
	var errs []error
	if spec.Service == "" {
		errs = append(errs, errors.New("no service name"))
	}
	if spec.Version == "" {
		errs = append(errs, errors.New("no version"))
	}
	if spec.Image == "" {
		errs = append(errs, errors.New("no image"))
	}
	if spec.Port <= 0 || spec.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not a TCP port", spec.Port))
	}
	return errors.Join(errs...)
}

// Labels is the label set of an instance of spec running the image with
// digest: the spec's extra labels, then cutover's own, which win, so extra
// labels cannot forge what the picture is rebuilt from.
func Labels(spec engine.InstanceSpec, digest string) map[string]string {
	labels := make(map[string]string, len(spec.Labels)+5)
	maps.Copy(labels, spec.Labels)
	labels[engine.LabelManaged] = "true"
	labels[engine.LabelService] = spec.Service
	labels[engine.LabelVersion] = spec.Version
	labels[engine.LabelDigest] = digest
	labels[engine.LabelRelease] = spec.ReleaseID
	return labels
}

// FromLabels fills in what an instance's labels say about it.
func FromLabels(in *engine.Instance, labels map[string]string) {
	in.Service = labels[engine.LabelService]
	in.Version = labels[engine.LabelVersion]
	in.Digest = labels[engine.LabelDigest]
	in.ReleaseID = labels[engine.LabelRelease]
}

// Name is cutover-<service>-<version>-<6 hex>, reduced to the characters
// Docker accepts in container and service names ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
func Name(service, version string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "cutover-" + sanitize(service) + "-" + sanitize(version) + "-" + hex.EncodeToString(b[:])
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			out[i] = '-'
		}
	}
	if len(out) == 0 {
		return "x"
	}
	return string(out)
}

// Env renders env as KEY=value lines in key order, as Docker takes them.
func Env(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// FreePort asks the kernel for a port free on host ("127.0.0.1", or ""
// for every interface).
func FreePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// CrashLogLines is how many of a crashed instance's last output lines go
// into its health detail: usually enough to show why it died.
const CrashLogLines = 3

// CrashDetail is what to tell an operator about a crash: what happened,
// then the instance's last output lines where there are any.
func CrashDetail(what string, lastLines []string) string {
	if len(lastLines) == 0 {
		return what
	}
	return what + "; last output: " + strings.Join(lastLines, " | ")
}

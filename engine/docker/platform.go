// Package docker runs cutover's instances as containers on a Docker host
// and lists the host's local images. It implements engine.Platform and
// engine.Registry; all it knows about an instance lives in container labels,
// so the picture survives a crash of the console.
package docker

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/docker/docker/client"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/instances"
)

// Compile-time proof that Platform is what the engine needs.
var (
	_ engine.Platform = (*Platform)(nil)
	_ engine.Registry = (*Platform)(nil)
)

// pingTimeout bounds how long New waits for a host that accepts
// connections but never answers (a wrong TCP DOCKER_HOST).
const pingTimeout = 10 * time.Second

// Platform is one Docker host. It is safe for concurrent use.
type Platform struct {
	cli   *client.Client
	host  string
	node  string // the engine's host name, put on every instance
	probe *instances.Prober
}

// New connects to the Docker host the way the docker CLI does (DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION), negotiates the
// API version, and pings it, so an unreachable host fails here with advice.
func New(ctx context.Context) (*Platform, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("Docker client for %s: %w", dockerHostEnv(), err)
	}
	p, err := NewWithClient(ctx, cli)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return p, nil
}

// NewWithClient wraps a client the caller configured, pinging it like New.
func NewWithClient(ctx context.Context, cli *client.Client) (*Platform, error) {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ping, err := cli.Ping(pctx)
	if err != nil {
		return nil, fmt.Errorf("Docker host %s does not answer: %w (is the Docker engine running? DOCKER_HOST selects another)", cli.DaemonHost(), connCause(pctx, cli, err))
	}
	// Settle the API version now (this engine may be far older than the
	// client, e.g. 20.10 speaking 1.41) instead of on the first request.
	cli.NegotiateAPIVersionPing(ping)
	// The engine's own name for its host says where instances run; a
	// remote DOCKER_HOST names another machine than this one.
	node := ""
	if info, err := cli.Info(pctx); err == nil {
		node = info.Name
	}
	return &Platform{cli: cli, host: cli.DaemonHost(), node: node, probe: instances.NewProber()}, nil
}

// Client returns the Docker client, for callers that build or remove
// images (the demo) with the same connection.
func (p *Platform) Client() *client.Client { return p.cli }

// Node returns the Docker engine's host name, as instances report it.
func (p *Platform) Node() string { return p.node }

// Host returns the Docker host address, for messages.
func (p *Platform) Host() string { return p.host }

// Close releases the client's connections.
func (p *Platform) Close() error {
	p.probe.Close()
	return p.cli.Close()
}

func dockerHostEnv() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return client.DefaultDockerHost
}

// connCause replaces the client's "Cannot connect ... Is the docker daemon
// running?", which would repeat our own advice and hides the reason, by the
// network error of dialling the host ourselves ("no such file or
// directory", "permission denied", "connection refused").
func connCause(ctx context.Context, cli *client.Client, err error) error {
	if !client.IsErrConnectionFailed(err) {
		return err
	}
	u, perr := client.ParseHostURL(cli.DaemonHost())
	if perr != nil || (u.Scheme != "unix" && u.Scheme != "tcp") {
		return err
	}
	var d net.Dialer
	conn, derr := d.DialContext(ctx, u.Scheme, u.Host) // ParseHostURL keeps a socket path in Host
	if derr != nil {
		return derr
	}
	conn.Close()
	return err
}

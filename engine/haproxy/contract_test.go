package haproxy_test

import (
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
	"github.com/cutover/cutover/engine/haproxy/haproxytest"
)

// The HAProxy adapter, against a real HAProxy, keeps every rule the
// engine relies on, as the built-in router and the in-memory one do.
func TestRouterContract(t *testing.T) {
	enginetest.RouterContract(t, func(t *testing.T) (engine.Router, []string) {
		h := haproxytest.Start(t)
		return h.Router(t), []string{"127.0.0.1:8081", "127.0.0.1:8082"}
	})
}

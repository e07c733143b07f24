package router

import (
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// The built-in router, driven through its admin client, keeps every rule
// the engine relies on; the in-memory router of engine/enginetest passes
// the same contract.
func TestRouterContract(t *testing.T) {
	enginetest.RouterContract(t, func(t *testing.T) (engine.Router, []string) {
		r := startRouter(t, Options{})
		return r.client, []string{"127.0.0.1:8081", "127.0.0.1:8082"}
	})
}

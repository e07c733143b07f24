package enginetest_test

import (
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// The in-memory journal keeps the same rules as the bbolt one.
func TestJournalContract(t *testing.T) {
	enginetest.JournalContract(t, func(t *testing.T, alive func(engine.Owner) bool) engine.Journal {
		j := enginetest.NewJournal(&enginetest.Trace{})
		j.Host, j.Alive = enginetest.ContractHost, alive
		return j
	})
}

// The in-memory router keeps the same rules as the built-in one.
func TestRouterContract(t *testing.T) {
	enginetest.RouterContract(t, func(t *testing.T) (engine.Router, []string) {
		return enginetest.NewRouter(&enginetest.Trace{}), []string{"127.0.0.1:8081", "127.0.0.1:8082"}
	})
}

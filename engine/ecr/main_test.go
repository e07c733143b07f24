package ecr_test

import (
	"os"
	"testing"

	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
)

func TestMain(m *testing.M) {
	code := demotest.Main(m)
	ecrtest.Stop()
	os.Exit(code)
}

package tui

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
)

// enabledKeysUnique fails when two enabled bindings share a key.
func enabledKeysUnique(t *testing.T, where string, km KeyMap) {
	t.Helper()
	seen := map[string]string{}
	for _, b := range km.Enabled() {
		for _, k := range b.Keys() {
			if other, ok := seen[k]; ok {
				t.Errorf("%s: key %q is bound to both %q and %q", where, k, other, b.Help().Desc)
			}
			seen[k] = b.Help().Desc
		}
	}
}

func TestNoScreenBindsOneKeyTwice(t *testing.T) {
	h := newHarness(t, 80, 24)
	enabledKeysUnique(t, "home", h.m.Keys())
	h.openPicker()
	enabledKeysUnique(t, "picker", h.m.Keys())
	h.press("enter")
	h.send(specMsg{svc, h.b.spec, nil})
	h.press("j")
	enabledKeysUnique(t, "strategy on a canary step", h.m.Keys())
	h.press("enter")
	enabledKeysUnique(t, "plan", h.m.Keys())

	h = newHarness(t, 80, 24)
	h.startCanary(gateIs(engine.GateApproval))
	enabledKeysUnique(t, "live at an approval gate", h.m.Keys())
	h.press("esc")
	enabledKeysUnique(t, "home with a release running", h.m.Keys())
	h.press("h")
	enabledKeysUnique(t, "history", h.m.Keys())
}

func TestTheBindingCheckCatchesADuplicate(t *testing.T) {
	km := DefaultKeyMap()
	km.disableAll()
	km.Deploy.SetEnabled(true) // enter
	km.Choose.SetEnabled(true) // enter too
	ft := &testing.T{}
	enabledKeysUnique(ft, "bad", km)
	if !ft.Failed() {
		t.Fatal("two enabled bindings on enter were not reported")
	}
}

func TestKeyLineListsOnlyKeysThatWorkHere(t *testing.T) {
	h := newHarness(t, 120, 40)
	v := h.view()
	last := v[strings.LastIndex(v, "\n")+1:]
	if strings.Contains(last, "approve") || !strings.Contains(last, "r roll back") {
		t.Fatalf("home key line: %q", last)
	}
	h.startCanary(gateIs(engine.GateApproval))
	v = h.view()
	last = v[strings.LastIndex(v, "\n")+1:]
	for _, want := range []string{"a approve", "p pause", "r roll back", "P promote", "esc back", "q quit"} {
		if !strings.Contains(last, want) {
			t.Errorf("live key line lacks %q: %q", want, last)
		}
	}
}

package tui

import "testing"

// Instance names differ only in their random tail, so a narrow column must
// keep the tail, not the shared prefix.
func TestNarrowInstanceNamesKeepTheirDistinctTail(t *testing.T) {
	a := fitTail("cutover-demo-1.0.0-7ee38f", 12)
	b := fitTail("cutover-demo-1.0.0-b50eb3", 12)
	if a == b {
		t.Fatalf("two instances render the same at 12 columns: %q", a)
	}
	if a != "….0.0-7ee38f" {
		t.Errorf("fitTail = %q, want %q", a, "….0.0-7ee38f")
	}
	if got := fitTail("short", 8); got != "short   " {
		t.Errorf("a name that fits is padded, not cut: %q", got)
	}
}

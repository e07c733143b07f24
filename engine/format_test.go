package engine_test

import (
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

func TestAgoSaysHowLongBeforeNowInOneUnit(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s ago", -time.Second: "0s ago", 3*time.Minute + 59*time.Second: "3m ago",
		47 * time.Hour: "47h ago", 50 * time.Hour: "2d ago",
	} {
		if got := engine.Ago(now, now.Add(-d)); got != want {
			t.Errorf("Ago(%v before) = %q, want %q", d, got, want)
		}
	}
	if got := engine.Ago(now, time.Time{}); got != "—" {
		t.Errorf("Ago(zero) = %q, want —", got)
	}
}

func TestHumanBytesUsesPowersOfAThousand(t *testing.T) {
	for n, want := range map[int64]string{999: "999 B", 1000: "1.0 kB", 7_400_000: "7.4 MB", 1_500_000_000: "1.5 GB"} {
		if got := engine.HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestShortDigestIsTheFirstTwelveHexDigits(t *testing.T) {
	if got := engine.ShortDigest("sha256:9f2c4e1ab7d0c3e5f6a7"); got != "9f2c4e1ab7d0" {
		t.Errorf("ShortDigest = %q", got)
	}
	if got := engine.ShortDigest("abc"); got != "abc" {
		t.Errorf("ShortDigest of a short id = %q", got)
	}
}

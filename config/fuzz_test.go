package config

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParseNeverPanicsAndRoundTrips feeds arbitrary files to Parse: it must
// return a config or errors, never panic, and any config it accepts must
// survive Marshal and Parse unchanged.
func FuzzParseNeverPanicsAndRoundTrips(f *testing.F) {
	for _, name := range []string{"example.yaml", "testdata/minimal.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("services: {web: {image: a, <<: [*b]}}\n"))
	f.Add([]byte("? [a]\n: 1\n"))
	f.Add([]byte("services:\n  web: !!map\n    image: !!str 12\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("cutover.yaml", data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse("cutover.yaml", out)
		if err != nil {
			t.Fatalf("effective config does not re-parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config:\n%s", out)
		}
	})
}

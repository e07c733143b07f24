package haproxy

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"strings"

	"github.com/cutover/cutover/engine"
)

// MaxServerWeight is the largest weight HAProxy gives a server.
const MaxServerWeight = 256

// serverWeights maps the table's weights (any integers up to
// engine.MaxWeight; the engine writes basis points) onto HAProxy's 0..256:
// the heaviest backend gets 256 and the others their share of it, rounded.
// A weight above 0 never rounds to 0, so a backend the engine gives
// traffic gets some. Each weight is therefore exact to half of 1/256 of
// the heaviest backend's: a canary the engine gives 1% beside four stable
// backends gets 0.97% (weight 10 against 4 × 256), and a backend lighter
// than 1/512 of the heaviest still gets weight 1.
func serverWeights(t engine.RouteTable) map[string]int {
	heaviest := 0
	for _, b := range t.Backends {
		heaviest = max(heaviest, b.Weight)
	}
	out := make(map[string]int, len(t.Backends))
	for _, b := range t.Backends {
		if b.Weight <= 0 || heaviest == 0 {
			out[b.ID] = 0
			continue
		}
		w := int(math.Round(float64(b.Weight) * MaxServerWeight / float64(heaviest)))
		out[b.ID] = min(max(w, 1), MaxServerWeight)
	}
	return out
}

// serverNameRE is what HAProxy accepts as a server name.
var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// checkTable refuses what HAProxy cannot represent, on top of what every
// router refuses (engine.ValidateTable): ids that are not HAProxy server
// names, and addresses the runtime API could not carry as one word.
func checkTable(t engine.RouteTable) error {
	if err := engine.ValidateTable(t); err != nil {
		return err
	}
	var problems []string
	for i, b := range t.Backends {
		if !serverNameRE.MatchString(b.ID) {
			problems = append(problems, fmt.Sprintf("backend %d %q: the id cannot name an HAProxy server (letters, digits, '.', '-', '_' and ':' only)", i, b.ID))
		}
		if strings.ContainsFunc(b.Addr, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`;\#"'`, r) }) {
			problems = append(problems, fmt.Sprintf("backend %d %q: address %q has characters HAProxy's runtime API cannot carry", i, b.ID, b.Addr))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", engine.ErrInvalidTable, strings.Join(problems, "; "))
	}
	return nil
}

// sameAddr says whether HAProxy's server sends to addr: same IP (HAProxy
// prints IPs its own way, so they are compared parsed) and same port.
func sameAddr(s server, addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != fmt.Sprint(s.Port) {
		return false
	}
	want, got := net.ParseIP(host), net.ParseIP(s.Addr)
	return want != nil && got != nil && want.Equal(got)
}

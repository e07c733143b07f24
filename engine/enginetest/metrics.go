package enginetest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/cutover/cutover/engine"
)

// Metrics is an engine.MetricsSource whose answers a test sets: each
// query gets the answer of the first rule whose text it contains, and a
// query no rule matches has no data.
type Metrics struct {
	mu      sync.Mutex
	rules   []metricRule
	queries []string
}

type metricRule struct {
	contains string
	answer   func() (float64, error)
}

// Answer makes queries containing contains answer v.
func (m *Metrics) Answer(contains string, v float64) {
	m.AnswerWith(contains, func() (float64, error) { return v, nil })
}

// Fail makes queries containing contains fail with err.
func (m *Metrics) Fail(contains string, err error) {
	m.AnswerWith(contains, func() (float64, error) { return 0, err })
}

// AnswerWith makes queries containing contains answer what f returns,
// replacing an earlier rule for the same text.
func (m *Metrics) AnswerWith(contains string, f func() (float64, error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.rules {
		if r.contains == contains {
			m.rules[i].answer = f
			return
		}
	}
	m.rules = append(m.rules, metricRule{contains, f})
}

// Query answers by the rules.
func (m *Metrics) Query(ctx context.Context, query string) (float64, error) {
	m.mu.Lock()
	m.queries = append(m.queries, query)
	var answer func() (float64, error)
	for _, r := range m.rules {
		if strings.Contains(query, r.contains) {
			answer = r.answer
			break
		}
	}
	m.mu.Unlock()
	if answer == nil {
		return 0, fmt.Errorf("%w: no series", engine.ErrNoData)
	}
	return answer()
}

// Queries lists every query asked, in order.
func (m *Metrics) Queries() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.queries...)
}

// Webhooks is an engine.Webhooks whose answer a test sets (nil passes).
type Webhooks struct {
	mu     sync.Mutex
	answer error
	asked  []engine.Event
}

// AnswerWith makes every later call return err.
func (w *Webhooks) AnswerWith(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.answer = err
}

// Ask records the call and answers.
func (w *Webhooks) Ask(ctx context.Context, hook engine.WebhookSpec, ev engine.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.asked = append(w.asked, ev)
	return w.answer
}

// Asked lists the events the gates asked about.
func (w *Webhooks) Asked() []engine.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]engine.Event(nil), w.asked...)
}

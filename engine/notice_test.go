package engine_test

import (
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestNoticeTemplateMustRenderJSONFromKnownFields(t *testing.T) {
	for text, want := range map[string]string{
		`{"text": {{.Summary}}}`:         "not JSON",
		`{"text": {{json .Sumary}}}`:     "Sumary",
		`{"text": {{json .Summary}}`:     "not JSON",
		`{"text": {{json .Summary}`:      "bad character",
		`{"kind": {{json .Event.Kind}}}`: "",
	} {
		_, err := engine.ParseNoticeTemplate(text)
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTemplate(%s): %v, want %q", text, err, want)
		}
	}
}

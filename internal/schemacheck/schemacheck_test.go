package schemacheck

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	s, err := Parse([]byte(`{"type":"object","required":["a","n"],"additionalProperties":false,
		"properties":{"a":{"type":"string","enum":["x","y"]},"n":{"type":"integer","minimum":1},
		"l":{"type":"array","items":{"$ref":"#/$defs/item"}},"o":{"type":["string","null"]}},
		"$defs":{"item":{"type":"object","required":["k"],"properties":{"k":{"const":3}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  string
		want string // "" = valid
	}{
		{`{"a":"x","n":2,"l":[{"k":3}],"o":null}`, ""},
		{`{"a":"z","n":2}`, "is not one of"},
		{`{"a":"x"}`, `required key "n" missing`},
		{`{"a":"x","n":0}`, "below the minimum"},
		{`{"a":"x","n":1.5}`, "type number, want integer"},
		{`{"a":"x","n":1,"extra":1}`, `key "extra" is not in the schema`},
		{`{"a":"x","n":1,"l":[{"k":4}]}`, "$.l[0].k: 4, want 3"},
		{`{"a":"x","n":1,"l":[{}]}`, `$.l[0]: required key "k" missing`},
		{`[1]`, "type array, want object"},
	} {
		errs := s.Validate([]byte(tc.doc))
		got := strings.Join(errs, "; ")
		if (tc.want == "") != (len(errs) == 0) || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.doc, got, tc.want)
		}
	}
}

// anyOf: one object or an array of them, as measure prints one shape or several.
func TestValidateAnyOf(t *testing.T) {
	s, err := Parse([]byte(`{"anyOf":[{"$ref":"#/$defs/o"},{"type":"array","items":{"$ref":"#/$defs/o"}}],
		"$defs":{"o":{"type":"object","required":["k"],"additionalProperties":false,"properties":{"k":{"type":"integer"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  string
		want string
	}{
		{`{"k":1}`, ""},
		{`[{"k":1},{"k":2}]`, ""},
		{`[]`, ""},
		{`[{"k":1},{"j":2}]`, "matches none of anyOf"},
		{`{"k":"x"}`, "matches none of anyOf"},
		{`3`, "matches none of anyOf"},
	} {
		errs := s.Validate([]byte(tc.doc))
		got := strings.Join(errs, "; ")
		if (tc.want == "") != (len(errs) == 0) || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.doc, got, tc.want)
		}
	}
}

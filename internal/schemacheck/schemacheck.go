// Package schemacheck validates JSON documents against the subset of JSON Schema (draft
// 2020-12) that this project's output schemas use: type (one or a list), required,
// properties, additionalProperties (boolean or schema), items, enum, const, minimum, anyOf and
// $ref to "#/$defs/NAME". It exists so tests can hold every command's real output to the schema
// published under schemas/, without a dependency.
package schemacheck

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Schema is a parsed schema document.
type Schema struct {
	root map[string]any
}

// Parse reads a schema.
func Parse(data []byte) (*Schema, error) {
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &Schema{root: root}, nil
}

// Validate checks a JSON document and returns every violation, each with its JSON path.
func (s *Schema) Validate(doc []byte) []string {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []string{"document: " + err.Error()}
	}
	var errs []string
	s.check(s.root, v, "$", &errs)
	return errs
}

func (s *Schema) resolve(node map[string]any) (map[string]any, error) {
	ref, ok := node["$ref"].(string)
	if !ok {
		return node, nil
	}
	name, found := strings.CutPrefix(ref, "#/$defs/")
	if !found {
		return nil, fmt.Errorf("unsupported $ref %q", ref)
	}
	defs, _ := s.root["$defs"].(map[string]any)
	def, ok := defs[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q: no such definition", ref)
	}
	return def, nil
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil || !strings.ContainsAny(x.String(), ".eE") {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func (s *Schema) check(node map[string]any, v any, path string, errs *[]string) {
	node, err := s.resolve(node)
	if err != nil {
		*errs = append(*errs, path+": "+err.Error())
		return
	}
	if alts, ok := node["anyOf"].([]any); ok {
		var all []string
		for i, a := range alts {
			sub, _ := a.(map[string]any)
			var e []string
			s.check(sub, v, path, &e)
			if len(e) == 0 {
				all = nil
				break
			}
			all = append(all, fmt.Sprintf("anyOf[%d]: %s", i, strings.Join(e, "; ")))
		}
		if len(all) > 0 {
			*errs = append(*errs, fmt.Sprintf("%s: matches none of anyOf (%s)", path, strings.Join(all, " | ")))
		}
	}
	if t, ok := node["type"]; ok {
		var allowed []string
		switch x := t.(type) {
		case string:
			allowed = []string{x}
		case []any:
			for _, e := range x {
				allowed = append(allowed, fmt.Sprint(e))
			}
		}
		got := typeOf(v)
		match := false
		for _, a := range allowed {
			match = match || a == got || (a == "number" && got == "integer")
		}
		if !match {
			*errs = append(*errs, fmt.Sprintf("%s: type %s, want %s", path, got, strings.Join(allowed, " or ")))
			return
		}
	}
	if c, ok := node["const"]; ok && !equalJSON(c, v) {
		*errs = append(*errs, fmt.Sprintf("%s: %v, want %v", path, v, c))
	}
	if enum, ok := node["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || equalJSON(e, v)
		}
		if !found {
			*errs = append(*errs, fmt.Sprintf("%s: %v is not one of %v", path, v, enum))
		}
	}
	if min, ok := node["minimum"].(float64); ok {
		if n, isNum := v.(json.Number); isNum {
			if f, _ := n.Float64(); f < min {
				*errs = append(*errs, fmt.Sprintf("%s: %v below the minimum %v", path, n, min))
			}
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := node["properties"].(map[string]any)
		if req, ok := node["required"].([]any); ok {
			for _, r := range req {
				if _, present := x[fmt.Sprint(r)]; !present {
					*errs = append(*errs, fmt.Sprintf("%s: required key %q missing", path, r))
				}
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := props[k].(map[string]any); ok {
				s.check(p, x[k], path+"."+k, errs)
				continue
			}
			switch ap := node["additionalProperties"].(type) {
			case bool:
				if !ap {
					*errs = append(*errs, fmt.Sprintf("%s: key %q is not in the schema", path, k))
				}
			case map[string]any:
				s.check(ap, x[k], path+"."+k, errs)
			}
		}
	case []any:
		if items, ok := node["items"].(map[string]any); ok {
			for i, e := range x {
				s.check(items, e, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	}
}

func equalJSON(a, b any) bool {
	if n, ok := b.(json.Number); ok {
		f, _ := n.Float64()
		b = f
	}
	return reflect.DeepEqual(a, b)
}

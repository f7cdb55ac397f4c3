package verify

// The app-compose document: which serialization of it the CVM's compose hash is the SHA-256 of,
// and the facts in it an auditor reviews.
//
// The compose hash is SHA-256 of the exact bytes dstack-vmm handed to the CVM. Those bytes are
// whatever the deployer's tool wrote: NEAR AI and Phala's KMS CVMs carry indented JSON, while
// dstack's SDKs (getComposeHash) write a deterministic form — keys sorted recursively, compact,
// as JavaScript's JSON.stringify prints — optionally after normalizing the document. A file an
// auditor holds may be any of these, so each form is tried and the one that matched is named.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Compose forms, in the order they are tried.
const (
	// ComposeFormExact is the document's bytes as given.
	ComposeFormExact = "exact"
	// ComposeFormDeterministic is the SDK's getComposeHash(compose): keys sorted, compact.
	ComposeFormDeterministic = "deterministic"
	// ComposeFormNormalized is getComposeHash(compose, true): the deterministic form after
	// dropping what the runner does not use (docker_compose_file for a bash runner,
	// bash_script for a compose runner) and an empty pre_launch_script.
	ComposeFormNormalized = "sdk-normalized"
)

// maxComposeBytes bounds an app-compose document; real ones are a few KiB (the docker compose
// file inline), dstack-vmm itself refuses far smaller ones than this.
const maxComposeBytes = 4 << 20

// maxComposeDepth bounds nesting, so a hostile document cannot exhaust the stack.
const maxComposeDepth = 256

// ComposeForm is one serialization of an app-compose document and its SHA-256.
type ComposeForm struct {
	Name   string
	Bytes  []byte
	SHA256 []byte
}

// ComposeForms returns the serializations of an app-compose document that dstack's tools hash:
// the exact bytes always; the deterministic and SDK-normalized forms when the document is a
// JSON object (err says why they could not be built otherwise). Forms whose bytes equal an
// earlier form's are left out.
func ComposeForms(data []byte) ([]ComposeForm, error) {
	if len(data) > maxComposeBytes {
		return nil, fmt.Errorf("%d bytes, over the %d-byte limit", len(data), maxComposeBytes)
	}
	forms := []ComposeForm{newComposeForm(ComposeFormExact, data)}
	v, err := parseJSValue(data)
	if err != nil {
		return forms, err
	}
	if v.kind != jsObject {
		return forms, errors.New("not a JSON object")
	}
	add := func(name string, b []byte) {
		for _, f := range forms {
			if bytes.Equal(f.Bytes, b) {
				return
			}
		}
		forms = append(forms, newComposeForm(name, b))
	}
	add(ComposeFormDeterministic, deterministicJSON(v))
	// The SDK's current source also drops bash_script for a nerdctl-compose runner; its
	// releases up to 0.5.8 do not: both are tried.
	add(ComposeFormNormalized, deterministicJSON(normalizeCompose(v, true)))
	add(ComposeFormNormalized, deterministicJSON(normalizeCompose(v, false)))
	return forms, nil
}

func newComposeForm(name string, b []byte) ComposeForm {
	sum := sha256.Sum256(b)
	return ComposeForm{Name: name, Bytes: b, SHA256: sum[:]}
}

// MatchCompose returns the form of data whose SHA-256 is composeHash, or nil, with the forms
// tried.
func MatchCompose(data, composeHash []byte) (*ComposeForm, []ComposeForm, error) {
	forms, err := ComposeForms(data)
	for i := range forms {
		if bytes.Equal(forms[i].SHA256, composeHash) {
			return &forms[i], forms, nil
		}
	}
	return nil, forms, err
}

// ComposeFacts are the fields of an app-compose document an auditor reviews. Booleans the
// document does not set are null (dstack applies its own default then).
type ComposeFacts struct {
	Name            string `json:"name"`
	ManifestVersion string `json:"manifest_version,omitempty"`
	Runner          string `json:"runner"`
	// DockerComposeSHA256 is the SHA-256 of the docker_compose_file text, the part of the app
	// an auditor reads line by line; BashScriptSHA256 and PreLaunchScriptSHA256 likewise.
	DockerComposeSHA256   Hex   `json:"docker_compose_file_sha256,omitempty"`
	BashScriptSHA256      Hex   `json:"bash_script_sha256,omitempty"`
	PreLaunchScriptSHA256 Hex   `json:"pre_launch_script_sha256,omitempty"`
	InitScriptSHA256      []Hex `json:"init_script_sha256,omitempty"`
	KMSEnabled            *bool `json:"kms_enabled"`
	// GatewayEnabled is gateway_enabled, or its former name tproxy_enabled, or the deprecated
	// tproxy-net feature, as dstack reads it.
	GatewayEnabled          *bool `json:"gateway_enabled"`
	LocalKeyProviderEnabled *bool `json:"local_key_provider_enabled"`
	// KeyProvider is the provider the document selects, as dstack derives it: key_provider
	// when set, else kms when kms_enabled, else local when local_key_provider_enabled, else none.
	KeyProvider   string   `json:"key_provider"`
	KeyProviderID string   `json:"key_provider_id,omitempty"`
	AllowedEnvs   []string `json:"allowed_envs"`
	PublicLogs    *bool    `json:"public_logs"`
	PublicSysinfo *bool    `json:"public_sysinfo"`
	PublicTCBInfo *bool    `json:"public_tcbinfo"`
	NoInstanceID  *bool    `json:"no_instance_id"`
	SecureTime    *bool    `json:"secure_time"`
}

// ParseComposeFacts reads the reviewed fields of an app-compose document.
func ParseComposeFacts(data []byte) (*ComposeFacts, error) {
	var c struct {
		ManifestVersion         json.RawMessage `json:"manifest_version"`
		Name                    *string         `json:"name"`
		Runner                  *string         `json:"runner"`
		Features                []string        `json:"features"`
		DockerComposeFile       *string         `json:"docker_compose_file"`
		BashScript              *string         `json:"bash_script"`
		PreLaunchScript         *string         `json:"pre_launch_script"`
		InitScript              json.RawMessage `json:"init_script"`
		KMSEnabled              *bool           `json:"kms_enabled"`
		GatewayEnabled          *bool           `json:"gateway_enabled"`
		TproxyEnabled           *bool           `json:"tproxy_enabled"`
		LocalKeyProviderEnabled *bool           `json:"local_key_provider_enabled"`
		KeyProvider             *string         `json:"key_provider"`
		KeyProviderID           *string         `json:"key_provider_id"`
		AllowedEnvs             []string        `json:"allowed_envs"`
		PublicLogs              *bool           `json:"public_logs"`
		PublicSysinfo           *bool           `json:"public_sysinfo"`
		PublicTCBInfo           *bool           `json:"public_tcbinfo"`
		NoInstanceID            *bool           `json:"no_instance_id"`
		SecureTime              *bool           `json:"secure_time"`
	}
	if len(data) > maxComposeBytes {
		return nil, fmt.Errorf("%d bytes, over the %d-byte limit", len(data), maxComposeBytes)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("not an app-compose JSON object: %w", err)
	}
	if c.Runner == nil {
		return nil, errors.New("no runner: not an app-compose document")
	}
	f := &ComposeFacts{Runner: *c.Runner, KMSEnabled: c.KMSEnabled, LocalKeyProviderEnabled: c.LocalKeyProviderEnabled,
		AllowedEnvs: c.AllowedEnvs, PublicLogs: c.PublicLogs, PublicSysinfo: c.PublicSysinfo, PublicTCBInfo: c.PublicTCBInfo,
		NoInstanceID: c.NoInstanceID, SecureTime: c.SecureTime}
	if f.AllowedEnvs == nil {
		f.AllowedEnvs = []string{}
	}
	if c.Name != nil {
		f.Name = *c.Name
	}
	if len(c.ManifestVersion) > 0 {
		var s string
		if json.Unmarshal(c.ManifestVersion, &s) != nil {
			s = string(c.ManifestVersion)
		}
		f.ManifestVersion = s
	}
	digest := func(s *string) Hex {
		if s == nil {
			return nil
		}
		sum := sha256.Sum256([]byte(*s))
		return sum[:]
	}
	f.DockerComposeSHA256, f.BashScriptSHA256, f.PreLaunchScriptSHA256 = digest(c.DockerComposeFile), digest(c.BashScript), digest(c.PreLaunchScript)
	if len(c.InitScript) > 0 && string(c.InitScript) != "null" {
		var scripts []string
		var one string
		if json.Unmarshal(c.InitScript, &one) == nil {
			scripts = []string{one}
		} else if err := json.Unmarshal(c.InitScript, &scripts); err != nil {
			return nil, errors.New("init_script: want a string or a list of strings")
		}
		for i := range scripts {
			f.InitScriptSHA256 = append(f.InitScriptSHA256, digest(&scripts[i]))
		}
	}
	gw := (c.GatewayEnabled != nil && *c.GatewayEnabled) || (c.TproxyEnabled != nil && *c.TproxyEnabled)
	for _, feat := range c.Features {
		gw = gw || feat == "tproxy-net"
	}
	if gw || c.GatewayEnabled != nil || c.TproxyEnabled != nil {
		f.GatewayEnabled = &gw
	}
	switch {
	case c.KeyProvider != nil:
		f.KeyProvider = *c.KeyProvider
	case c.KMSEnabled != nil && *c.KMSEnabled:
		f.KeyProvider = "kms"
	case c.LocalKeyProviderEnabled != nil && *c.LocalKeyProviderEnabled:
		f.KeyProvider = "local"
	default:
		f.KeyProvider = "none"
	}
	if c.KeyProviderID != nil {
		f.KeyProviderID = strings.TrimPrefix(*c.KeyProviderID, "0x")
	}
	return f, nil
}

// jsValue is a JSON value as JavaScript's JSON.parse builds it: numbers are doubles, strings
// are UTF-16 (held here as WTF-8, so a lone surrogate survives), and an object's properties
// enumerate array-index keys first in numeric order, then the others in insertion order, a
// repeated key keeping its first position and its last value.
type jsValue struct {
	kind  byte
	str   string  // jsString
	num   float64 // jsNumber
	keys  []string
	vals  []*jsValue // jsObject: values of keys; jsArray: the elements
	index map[string]int
}

const (
	jsNull byte = iota
	jsTrue
	jsFalse
	jsNumber
	jsString
	jsArray
	jsObject
)

// set defines a property as JSON.parse does.
func (v *jsValue) set(k string, x *jsValue) {
	if i, ok := v.index[k]; ok {
		v.vals[i] = x
		return
	}
	v.index[k] = len(v.keys)
	v.keys = append(v.keys, k)
	v.vals = append(v.vals, x)
}

func (v *jsValue) get(k string) (*jsValue, bool) {
	i, ok := v.index[k]
	if !ok {
		return nil, false
	}
	return v.vals[i], true
}

func (v *jsValue) del(k string) {
	i, ok := v.index[k]
	if !ok {
		return
	}
	v.keys = append(v.keys[:i:i], v.keys[i+1:]...)
	v.vals = append(v.vals[:i:i], v.vals[i+1:]...)
	v.index = make(map[string]int, len(v.keys))
	for j, k := range v.keys {
		v.index[k] = j
	}
}

// arrayIndex reports whether k is an array index (a canonical uint32 below 2^32-1), which
// JavaScript objects enumerate before every other key.
func arrayIndex(k string) (uint64, bool) {
	if k == "" || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	if err != nil || n >= math.MaxUint32 {
		return 0, false
	}
	return n, true
}

// enumerationOrder returns the keys in JavaScript's property order given their insertion order.
func enumerationOrder(keys []string) []string {
	var idx, rest []string
	for _, k := range keys {
		if _, ok := arrayIndex(k); ok {
			idx = append(idx, k)
		} else {
			rest = append(rest, k)
		}
	}
	sort.SliceStable(idx, func(i, j int) bool {
		a, _ := arrayIndex(idx[i])
		b, _ := arrayIndex(idx[j])
		return a < b
	})
	return append(idx, rest...)
}

type jsParser struct {
	data  []byte
	pos   int
	depth int
}

// parseJSValue parses JSON as JSON.parse does (RFC 8259, no byte order mark), over UTF-8
// text.
func parseJSValue(data []byte) (*jsValue, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8 text")
	}
	p := &jsParser{data: data}
	p.space()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, p.errorf("text after the JSON value")
	}
	return v, nil
}

func (p *jsParser) errorf(format string, args ...any) error {
	line := 1 + bytes.Count(p.data[:p.pos], []byte{'\n'})
	return fmt.Errorf("JSON line %d: %s", line, fmt.Sprintf(format, args...))
}

func (p *jsParser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsParser) literal(word string, v *jsValue) (*jsValue, error) {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return nil, p.errorf("invalid literal")
	}
	p.pos += len(word)
	return v, nil
}

func (p *jsParser) value() (*jsValue, error) {
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{' || c == '[':
		if p.depth++; p.depth > maxComposeDepth {
			return nil, p.errorf("nested deeper than %d", maxComposeDepth)
		}
		defer func() { p.depth-- }()
		if c == '{' {
			return p.object()
		}
		return p.array()
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &jsValue{kind: jsString, str: s}, nil
	case c == 't':
		return p.literal("true", &jsValue{kind: jsTrue})
	case c == 'f':
		return p.literal("false", &jsValue{kind: jsFalse})
	case c == 'n':
		return p.literal("null", &jsValue{kind: jsNull})
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *jsParser) object() (*jsValue, error) {
	p.pos++
	v := &jsValue{kind: jsObject, index: map[string]int{}}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("want a string key")
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("want ':' after a key")
		}
		p.pos++
		p.space()
		x, err := p.value()
		if err != nil {
			return nil, err
		}
		v.set(k, x)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			v.keys = enumerationOrder(v.keys)
			vals := make([]*jsValue, len(v.keys))
			for i, k := range v.keys {
				vals[i] = v.vals[v.index[k]]
			}
			v.vals = vals
			for i, k := range v.keys {
				v.index[k] = i
			}
			return v, nil
		default:
			return nil, p.errorf("want ',' or '}' in an object")
		}
	}
}

func (p *jsParser) array() (*jsValue, error) {
	p.pos++
	v := &jsValue{kind: jsArray}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		x, err := p.value()
		if err != nil {
			return nil, err
		}
		v.vals = append(v.vals, x)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errorf("unexpected end of input in an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.errorf("want ',' or ']' in an array")
		}
	}
}

func (p *jsParser) number() (*jsValue, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.errorf("invalid number")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	// Out of range parses to ±Infinity (or 0), as in JavaScript; ParseFloat says so with
	// ErrRange and the same value.
	f, err := strconv.ParseFloat(string(p.data[start:p.pos]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, p.errorf("invalid number")
	}
	return &jsValue{kind: jsNumber, num: f}, nil
}

func hexVal(c byte) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0'), true
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10), true
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

// string reads a JSON string into WTF-8: a \u escape of a lone surrogate is kept as its
// 3-byte generalized UTF-8, so it prints back as JSON.stringify prints it.
func (p *jsParser) string() (string, error) {
	p.pos++
	var b strings.Builder
	u4 := func() (rune, error) {
		if p.pos+4 > len(p.data) {
			return 0, p.errorf("short \\u escape")
		}
		var r rune
		for _, c := range p.data[p.pos : p.pos+4] {
			h, ok := hexVal(c)
			if !ok {
				return 0, p.errorf("invalid \\u escape")
			}
			r = r<<4 | h
		}
		p.pos += 4
		return r, nil
	}
	for {
		if p.pos >= len(p.data) {
			return "", p.errorf("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c < 0x20:
			return "", p.errorf("control character in a string")
		case c != '\\':
			_, n := utf8.DecodeRune(p.data[p.pos:])
			b.Write(p.data[p.pos : p.pos+n])
			p.pos += n
			continue
		}
		p.pos++
		if p.pos >= len(p.data) {
			return "", p.errorf("unterminated string")
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, err := u4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) && r < 0xdc00 && p.pos+6 <= len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
				save := p.pos
				p.pos += 2
				lo, err := u4()
				if err == nil && lo >= 0xdc00 && lo <= 0xdfff {
					b.WriteRune(utf16.DecodeRune(r, lo))
					continue
				}
				p.pos = save
			}
			if utf16.IsSurrogate(r) {
				b.Write([]byte{0xed, byte(0x80 | (r>>6)&0x3f), byte(0x80 | r&0x3f)})
			} else {
				b.WriteRune(r)
			}
		default:
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
}

// deterministicJSON is dstack's SDK toDeterministicJson: JSON.stringify(sortObject(v)).
func deterministicJSON(v *jsValue) []byte {
	var b bytes.Buffer
	writeJS(&b, sortJS(v))
	return b.Bytes()
}

// sortJS is the SDK's sortObject: each plain object's keys sorted (in UTF-16 code unit order)
// and re-inserted into a new object, recursively. Two JavaScript details carry into the
// bytes: re-insertion with assignment, where a "__proto__" key sets the prototype instead
// of a property (so it disappears), and the plain-object test obj.constructor === Object,
// which an own "constructor" key defeats (that object is kept as parsed, unsorted inside).
func sortJS(v *jsValue) *jsValue {
	switch v.kind {
	case jsArray:
		out := &jsValue{kind: jsArray, vals: make([]*jsValue, len(v.vals))}
		for i, x := range v.vals {
			out.vals[i] = sortJS(x)
		}
		return out
	case jsObject:
		if _, ok := v.get("constructor"); ok {
			return v
		}
		keys := append([]string(nil), v.keys...)
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		out := &jsValue{kind: jsObject, index: map[string]int{}}
		for _, k := range keys {
			if k == "__proto__" {
				continue
			}
			x, _ := v.get(k)
			out.set(k, sortJS(x))
		}
		out.keys = enumerationOrder(out.keys)
		vals := make([]*jsValue, len(out.keys))
		for i, k := range out.keys {
			vals[i], _ = out.get(k)
		}
		out.vals = vals
		for i, k := range out.keys {
			out.index[k] = i
		}
		return out
	}
	return v
}

// lessUTF16 orders strings as JavaScript's default sort does: by UTF-16 code units.
func lessUTF16(a, b string) bool {
	ua, ub := utf16Units(a), utf16Units(b)
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

// utf16Units converts WTF-8 to UTF-16 code units.
func utf16Units(s string) []uint16 {
	var out []uint16
	for i := 0; i < len(s); {
		if r, ok := wtf8Surrogate(s[i:]); ok {
			out = append(out, uint16(r))
			i += 3
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			out = append(out, uint16(hi), uint16(lo))
		} else {
			out = append(out, uint16(r))
		}
		i += n
	}
	return out
}

// wtf8Surrogate decodes a lone surrogate's 3-byte form at the start of s.
func wtf8Surrogate(s string) (rune, bool) {
	if len(s) >= 3 && s[0] == 0xed && s[1] >= 0xa0 && s[1] <= 0xbf && s[2]&0xc0 == 0x80 {
		return 0xd000 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), true
	}
	return 0, false
}

// normalizeCompose is the SDK's preprocessAppCompose on a copy of the top-level object;
// nerdctl says whether a nerdctl-compose runner, like docker-compose, drops bash_script.
func normalizeCompose(v *jsValue, nerdctl bool) *jsValue {
	out := &jsValue{kind: jsObject, keys: append([]string(nil), v.keys...), vals: append([]*jsValue(nil), v.vals...), index: map[string]int{}}
	for i, k := range out.keys {
		out.index[k] = i
	}
	runner, _ := out.get("runner")
	isRunner := func(names ...string) bool {
		if runner == nil || runner.kind != jsString {
			return false
		}
		for _, n := range names {
			if runner.str == n {
				return true
			}
		}
		return false
	}
	if _, ok := out.get("docker_compose_file"); ok && isRunner("bash") {
		out.del("docker_compose_file")
	} else if _, ok := out.get("bash_script"); ok && (isRunner("docker-compose") || (nerdctl && isRunner("nerdctl-compose"))) {
		out.del("bash_script")
	}
	if p, ok := out.get("pre_launch_script"); ok && jsFalsy(p) {
		out.del("pre_launch_script")
	}
	return out
}

func jsFalsy(v *jsValue) bool {
	switch v.kind {
	case jsNull, jsFalse:
		return true
	case jsNumber:
		return v.num == 0 || math.IsNaN(v.num)
	case jsString:
		return v.str == ""
	}
	return false
}

// writeJS is JSON.stringify without indentation.
func writeJS(b *bytes.Buffer, v *jsValue) {
	switch v.kind {
	case jsNull:
		b.WriteString("null")
	case jsTrue:
		b.WriteString("true")
	case jsFalse:
		b.WriteString("false")
	case jsNumber:
		b.WriteString(jsNumberString(v.num))
	case jsString:
		writeJSString(b, v.str)
	case jsArray:
		b.WriteByte('[')
		for i, x := range v.vals {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJS(b, x)
		}
		b.WriteByte(']')
	case jsObject:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSString(b, k)
			b.WriteByte(':')
			writeJS(b, v.vals[i])
		}
		b.WriteByte('}')
	}
}

// writeJSString quotes as JSON.stringify does: only '"', '\\', control characters and lone
// surrogates are escaped; everything else, '<', '>', '&', U+2028 and non-ASCII included, is
// written as it is.
func writeJSString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		if r, ok := wtf8Surrogate(s[i:]); ok {
			fmt.Fprintf(b, "\\u%04x", r)
			i += 3
			continue
		}
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				fmt.Fprintf(b, "\\u%04x", c)
			} else {
				b.WriteByte(c)
			}
		}
		i++
	}
	b.WriteByte('"')
}

// jsNumberString is JavaScript's Number::toString for a finite double (ECMA-262
// Number::toString, radix 10); NaN and the infinities print as null, as the SDK's replacer
// and JSON.stringify make them.
func jsNumberString(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	if f == 0 {
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// Shortest digits that round-trip, and the exponent: d.ddd e±x.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	var s string
	switch {
	case k <= n && n <= 21:
		s = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		s = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		s = "0." + strings.Repeat("0", -n) + digits
	default:
		es := "+"
		if n-1 < 0 {
			es = "-"
		}
		ex := n - 1
		if ex < 0 {
			ex = -ex
		}
		s = digits[:1]
		if k > 1 {
			s += "." + digits[1:]
		}
		s += "e" + es + strconv.Itoa(ex)
	}
	return sign + s
}

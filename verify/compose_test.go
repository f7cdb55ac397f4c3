package verify

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
)

// sdkVectors are the hashes dstack's published SDK (@phala/dstack-sdk getComposeHash, run on
// node by testdata/compose/gen-sdk-vectors.js) gives for documents written to exercise
// JavaScript's JSON details, and for real app-compose documents in the shared data.
type sdkVectors struct {
	Generator string `json:"generator"`
	Vectors   []struct {
		Input         string `json:"input"`
		SDK           string `json:"sdk"`
		SDKNormalized string `json:"sdk_normalized"`
	} `json:"vectors"`
	Real []struct {
		Shared        string `json:"shared"`
		SDK           string `json:"sdk"`
		SDKNormalized string `json:"sdk_normalized"`
	} `json:"real"`
}

func loadSDKVectors(t testing.TB) *sdkVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/compose/sdk-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v sdkVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func sha256Hex(b []byte) string {
	return hex.EncodeToString(newComposeForm("", b).SHA256)
}

// sdkForms are the SDK's two hashes as this package computes them: getComposeHash(c) and
// getComposeHash(c, true) of the published releases (nerdctl-compose keeps bash_script).
func sdkForms(t *testing.T, doc []byte) (plain, normalized string) {
	t.Helper()
	v, err := parseJSValue(doc)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return sha256Hex(deterministicJSON(v)), sha256Hex(deterministicJSON(normalizeCompose(v, false)))
}

// The deterministic and normalized forms are byte for byte what dstack's SDK hashes: key order
// (UTF-16, array-index keys first, __proto__ and constructor keys), number formatting, string
// escaping, lone surrogates, the normalization rules.
func TestDeterministicFormMatchesDstackSDK(t *testing.T) {
	vecs := loadSDKVectors(t)
	for i, v := range vecs.Vectors {
		plain, norm := sdkForms(t, []byte(v.Input))
		if plain != v.SDK || norm != v.SDKNormalized {
			v2, _ := parseJSValue([]byte(v.Input))
			t.Errorf("vector %d %.60q: deterministic %s (%s), SDK %s; normalized %s, SDK %s", i, v.Input, plain,
				deterministicJSON(v2), v.SDK, norm, v.SDKNormalized)
		}
	}
	for _, v := range vecs.Real {
		doc := realCompose(t, v.Shared)
		plain, norm := sdkForms(t, doc)
		if plain != v.SDK || norm != v.SDKNormalized {
			t.Errorf("%s: deterministic %s, SDK %s; normalized %s, SDK %s", v.Shared, plain, v.SDK, norm, v.SDKNormalized)
		}
	}
	if len(vecs.Vectors) < 19 || len(vecs.Real) < 5 {
		t.Errorf("only %d vectors and %d real documents", len(vecs.Vectors), len(vecs.Real))
	}
}

// realCompose reads an app-compose document from the shared data: a file, or the
// tcb_info.app_compose of a guest agent Info.
func realCompose(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(testvectors.Shared(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		TCBInfo string `json:"tcb_info"`
	}
	if json.Unmarshal(b, &info) != nil || info.TCBInfo == "" {
		return b
	}
	var tcb struct {
		AppCompose string `json:"app_compose"`
	}
	if err := json.Unmarshal([]byte(info.TCBInfo), &tcb); err != nil {
		t.Fatal(err)
	}
	return []byte(tcb.AppCompose)
}

// A document matches by the form that hashes to the compose hash, and says which.
func TestMatchComposeForms(t *testing.T) {
	vecs := loadSDKVectors(t)
	byName := func(prefix string) (input string, sdk, norm []byte) {
		for _, v := range vecs.Vectors {
			if strings.Contains(v.Input, prefix) {
				a, _ := hex.DecodeString(v.SDK)
				b, _ := hex.DecodeString(v.SDKNormalized)
				return v.Input, a, b
			}
		}
		t.Fatalf("no vector with %q", prefix)
		return
	}
	indented, indentedSDK, _ := byName(`"name": "indented"`)
	bash, bashSDK, bashNorm := byName(`"runner":"bash","bash_script":"echo hi"`)
	nerdctl, _, nerdctlNorm := byName(`"runner":"nerdctl-compose"`)
	for _, tc := range []struct {
		name, doc string
		hash      []byte
		want      string // "" = no match
	}{
		{"exact bytes", indented, newComposeForm("", []byte(indented)).SHA256, ComposeFormExact},
		{"SDK form of an indented file", indented, indentedSDK, ComposeFormDeterministic},
		{"SDK form, bash runner", bash, bashSDK, ComposeFormDeterministic},
		{"SDK normalized, bash runner", bash, bashNorm, ComposeFormNormalized},
		{"SDK 0.5.8 normalized, nerdctl-compose", nerdctl, nerdctlNorm, ComposeFormDeterministic},
		{"another document's hash", indented, bashSDK, ""},
		{"not JSON, exact only", "runner: bash\n", newComposeForm("", []byte("runner: bash\n")).SHA256, ComposeFormExact},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form, forms, _ := MatchCompose([]byte(tc.doc), tc.hash)
			got := ""
			if form != nil {
				got = form.Name
			}
			if got != tc.want {
				var names []string
				for _, f := range forms {
					names = append(names, f.Name)
				}
				t.Errorf("matched %q, want %q (forms %v)", got, tc.want, names)
			}
		})
	}
	// The current SDK source also drops a nerdctl-compose runner's bash_script: tried too.
	v, _ := parseJSValue([]byte(nerdctl))
	current := newComposeForm("", deterministicJSON(normalizeCompose(v, true))).SHA256
	if form, _, _ := MatchCompose([]byte(nerdctl), current); form == nil || form.Name != ComposeFormNormalized {
		t.Errorf("nerdctl-compose normalized as the SDK's current source: %+v", form)
	}
}

// Documents that are not app-compose JSON objects still have their exact form, and say why
// no other form was built; nothing panics.
func TestComposeFormsBadInput(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON": "runner: bash", "array": `[1]`, "trailing": `{"a":1} x`, "BOM": "\ufeff{}",
		"not UTF-8": "{\"a\":\"\xff\"}", "deep": strings.Repeat("[", maxComposeDepth+1) + strings.Repeat("]", maxComposeDepth+1),
		"bad escape": `{"a":"\x"}`, "bad number": `{"a":01}`, "raw control": "{\"a\":\"\x01\"}",
	} {
		forms, err := ComposeForms([]byte(doc))
		if err == nil || len(forms) != 1 || forms[0].Name != ComposeFormExact {
			t.Errorf("%s: forms %d, err %v", name, len(forms), err)
		}
	}
	huge := make([]byte, maxComposeBytes+1)
	if _, err := ComposeForms(huge); err == nil {
		t.Error("oversized document accepted")
	}
	r := &Report{App: &AppInfo{ComposeHash: make(Hex, 32)}}
	checkAppCompose(r, &Options{AppCompose: huge}, &inputs{appCompose: huge})
	if c := findCheck(r, "app-compose"); c == nil || c.OK || r.App.AppCompose == nil || r.App.InputAppCompose == nil || findCheck(r, "input-app-compose") == nil {
		t.Errorf("oversized documents: %+v", r.Checks)
	}
}

// composeHashEvent is the payload of the compose-hash event in a GetQuote-style event log.
func composeHashEvent(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		EventLog json.RawMessage `json:"event_log"`
	}
	if json.Unmarshal(b, &doc) != nil || doc.EventLog == nil {
		doc.EventLog = b // a bare event log
	}
	events, err := eventlog.Parse(doc.EventLog)
	if err != nil {
		t.Fatal(err)
	}
	return eventlog.ExtractRTMR3(events).ComposeHash
}

// Real app-compose files against the compose hash their CVM attested.
func TestMatchComposeRealAttestations(t *testing.T) {
	for _, tc := range []struct {
		compose, log string
		want         string
	}{
		{"real-attestations/dstack-examples-attestation-2025/app-compose.json", "real-attestations/dstack-examples-attestation-2025/report.json", ComposeFormExact},
		// Published beside the simulator's quote, but not its app's compose (PROVENANCE.txt).
		{"real-attestations/dstack-sdk-simulator/app-compose.c65b8991.json", "real-attestations/dstack-sdk-simulator/eventlog.json", ""},
	} {
		doc, err := os.ReadFile(testvectors.Shared(t, tc.compose))
		if err != nil {
			t.Fatal(err)
		}
		attested := composeHashEvent(t, testvectors.Shared(t, tc.log))
		form, _, _ := MatchCompose(doc, attested)
		if (form == nil && tc.want != "") || (form != nil && form.Name != tc.want) {
			t.Errorf("%s: matched %+v, want %q", tc.compose, form, tc.want)
		}
		r, err := Verify(Options{Attestation: attestationOrLog(t, tc.log), AppCompose: doc})
		if err != nil {
			t.Fatal(err)
		}
		c := findCheck(r, "app-compose")
		if c == nil || c.OK != (tc.want != "") || r.App.AppCompose == nil || (r.App.AppCompose.Facts != nil) != (tc.want != "") {
			t.Errorf("%s: check %+v, report %+v", tc.compose, c, r.App.AppCompose)
		}
		if tc.want != "" {
			var named struct{ Name, Runner string }
			_ = json.Unmarshal(doc, &named)
			if f := r.App.AppCompose.Facts; f.Name != named.Name || f.Runner != named.Runner || f.DockerComposeSHA256 == nil {
				t.Errorf("facts %+v", f)
			}
		}
	}
}

// attestationOrLog returns a GetQuote file as is, or the simulator's quote.hex and event log
// as one.
func attestationOrLog(t *testing.T, rel string) []byte {
	t.Helper()
	if !strings.HasSuffix(rel, "eventlog.json") {
		b, err := os.ReadFile(testvectors.Shared(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir := filepath.Dir(testvectors.Shared(t, rel))
	q, err := os.ReadFile(filepath.Join(dir, "quote.hex"))
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "eventlog.json"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"quote": strings.TrimSpace(string(q)), "event_log": json.RawMessage(log)})
	return out
}

// Every guest agent Info in the shared data carries an app_compose that hashes, byte for byte,
// to the compose hash its RTMR3 attests; one carrying another app's compose fails and shows
// none of its facts.
func TestInputAppComposeOfRealInfos(t *testing.T) {
	dir := testvectors.Shared(t, "real-attestations/phala-trust-center/kmsInfo")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Info files in %s: %v", dir, err)
	}
	var first, other []byte
	for _, f := range files {
		info, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Verify(Options{Info: info})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c, ic := findCheck(r, "input-app-compose"), r.App.InputAppCompose
		if c == nil || !c.OK || ic == nil || ic.Form != ComposeFormExact || ic.Facts == nil || ic.Facts.Runner == "" {
			t.Errorf("%s: check %+v, %+v", filepath.Base(f), c, ic)
		}
		switch {
		case first == nil:
			first = info
		case other == nil && !bytes.Equal(realCompose(t, "real-attestations/phala-trust-center/kmsInfo/"+filepath.Base(f)),
			realCompose(t, "real-attestations/phala-trust-center/kmsInfo/"+filepath.Base(files[0]))):
			other = info
		}
	}
	t.Logf("%d Info files: every app_compose matched its attested compose hash exactly", len(files))
	// Swap in another CVM's app_compose.
	var a, b map[string]any
	_ = json.Unmarshal(first, &a)
	_ = json.Unmarshal(other, &b)
	var ta, tb map[string]any
	_ = json.Unmarshal([]byte(a["tcb_info"].(string)), &ta)
	_ = json.Unmarshal([]byte(b["tcb_info"].(string)), &tb)
	ta["app_compose"] = tb["app_compose"]
	tcb, _ := json.Marshal(ta)
	a["tcb_info"] = string(tcb)
	tampered, _ := json.Marshal(a)
	r, err := Verify(Options{Info: tampered})
	if err != nil {
		t.Fatal(err)
	}
	if c := findCheck(r, "input-app-compose"); c == nil || c.OK || r.App.InputAppCompose.Facts != nil || r.App.InputAppCompose.Matched {
		t.Errorf("another app's compose: check %+v, %+v", c, r.App.InputAppCompose)
	}
}

// ParseComposeFacts reads what dstack reads: the effective key provider and gateway flag,
// unset booleans as null, script digests.
func TestParseComposeFacts(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		doc     string
		kp      string
		gateway *bool
		logs    *bool
		scripts int
	}{
		{`{"runner":"docker-compose","kms_enabled":true}`, "kms", nil, nil, 0},
		{`{"runner":"docker-compose","local_key_provider_enabled":true,"tproxy_enabled":true}`, "local", &yes, nil, 0},
		{`{"runner":"docker-compose","key_provider":"tpm","kms_enabled":true,"gateway_enabled":false,"public_logs":false}`, "tpm", &no, &no, 0},
		{`{"runner":"docker-compose","features":["tproxy-net"],"init_script":"echo"}`, "none", &yes, nil, 1},
		{`{"runner":"docker-compose","init_script":["a","b"]}`, "none", nil, nil, 2},
	} {
		f, err := ParseComposeFacts([]byte(tc.doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.doc, err)
		}
		if f.KeyProvider != tc.kp || (f.GatewayEnabled == nil) != (tc.gateway == nil) || (tc.gateway != nil && *f.GatewayEnabled != *tc.gateway) ||
			(f.PublicLogs == nil) != (tc.logs == nil) || len(f.InitScriptSHA256) != tc.scripts || f.AllowedEnvs == nil {
			t.Errorf("%s: %+v", tc.doc, f)
		}
	}
	for _, bad := range []string{`[]`, `{"name":"x"}`, `{"runner":"x","init_script":7}`, `not json`} {
		if _, err := ParseComposeFacts([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// FuzzComposeForms: any input yields its exact form without panicking; a JSON object's
// deterministic form parses back to itself (the SDK's form is a fixed point).
func FuzzComposeForms(f *testing.F) {
	for _, v := range loadSDKVectors(f).Vectors {
		f.Add([]byte(v.Input))
	}
	if dir, ok := testvectors.SharedDir(); ok {
		if b, err := os.ReadFile(filepath.Join(dir, "real-attestations/dstack-examples-attestation-2025/app-compose.json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"runner":"bash","\u0000":"\ud800","1":1e999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		forms, err := ComposeForms(data)
		if len(data) <= maxComposeBytes && (len(forms) == 0 || !bytes.Equal(forms[0].Bytes, data)) {
			t.Fatal("no exact form")
		}
		_, _ = ParseComposeFacts(data)
		r := &Report{App: &AppInfo{ComposeHash: make(Hex, 32)}}
		checkAppCompose(r, &Options{AppCompose: data}, &inputs{appCompose: data, vmConfig: data})
		if len(r.Checks) != 2 {
			t.Fatalf("checks %+v", r.Checks)
		}
		// JSON.parse accepts exactly RFC 8259 JSON: so does encoding/json, on UTF-8 text.
		if _, perr := parseJSValue(data); (perr == nil) != (json.Valid(data) && utf8.Valid(data)) && !strings.Contains(fmt.Sprint(perr), "nested deeper") {
			t.Fatalf("parse error %v, encoding/json valid %v", perr, json.Valid(data))
		}
		if err != nil {
			return
		}
		for _, fm := range forms[1:] {
			v, err := parseJSValue(fm.Bytes)
			if err != nil {
				t.Fatalf("%s form does not parse: %v\n%s", fm.Name, err, fm.Bytes)
			}
			if again := deterministicJSON(v); !bytes.Equal(again, fm.Bytes) && !hasJSQuirkKey(v) {
				t.Fatalf("%s form is not a fixed point:\n%s\n%s", fm.Name, fm.Bytes, again)
			}
		}
	})
}

// hasJSQuirkKey: objects with a "constructor" key are kept unsorted by the SDK, so their
// form need not be a fixed point.
func hasJSQuirkKey(v *jsValue) bool {
	if _, ok := v.get("constructor"); ok && v.kind == jsObject {
		return true
	}
	for _, x := range v.vals {
		if hasJSQuirkKey(x) {
			return true
		}
	}
	return false
}

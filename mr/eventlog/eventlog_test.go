package eventlog

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/quote"
)

type getQuote struct {
	Quote    string `json:"quote"`
	EventLog string `json:"event_log"`
}

// fixtures are real GetQuote responses from real dstack CVMs (upstream dstack's verifier
// fixtures): a full log with payloads, and a compact "lite" log with boot payloads and runtime
// digests stripped.
var fixtures = []string{"quote-report.json", "tdx-lite-getquote.json"}

func load(t testing.TB, name string) (getQuote, *quote.Quote) {
	t.Helper()
	data, err := os.ReadFile(testvectors.Shared(t, testvectors.DstackVerifier(name)))
	if err != nil {
		t.Fatal(err)
	}
	var g getQuote
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	q, err := quote.ParseAuto([]byte(g.Quote))
	if err != nil {
		t.Fatal(err)
	}
	return g, q
}

func TestReplayGenuine(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			g, q := load(t, name)
			events, err := Parse([]byte(g.EventLog))
			if err != nil {
				t.Fatal(err)
			}
			// The same log given as a JSON string (how GetQuote's field carries it) parses too.
			quoted, _ := json.Marshal(g.EventLog)
			again, err := Parse(quoted)
			if err != nil || len(again) != len(events) {
				t.Fatalf("quoted form: %v", err)
			}
			mrs := Replay(events)
			for i := range mrs {
				if !bytes.Equal(mrs[i], q.Report.RTMR[i]) {
					t.Errorf("RTMR%d replays to %x, quote says %x", i, mrs[i], q.Report.RTMR[i])
				}
			}
			if p := CheckRuntimeDigests(events); len(p) != 0 {
				t.Errorf("runtime digest problems in a genuine log: %+v", p)
			}
		})
	}
}

func TestBootPayloadsHashToDigests(t *testing.T) {
	// Where the full log keeps a boot event's payload and the payload is the measured data
	// itself (EFI variables, actions, separators), SHA-384(payload) is the logged digest:
	// evidence that the labels below name what was measured.
	g, _ := load(t, "quote-report.json")
	events, err := Parse([]byte(g.EventLog))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		switch e.EventType {
		case EvEFIVariableDriverConfig, EvEFIAction, EvSeparator:
			sum := sha512.Sum384(e.Payload)
			if !bytes.Equal(sum[:], e.Digest) {
				t.Errorf("event %d (type 0x%x): SHA-384(payload) != digest", e.Index, e.EventType)
			}
			n++
		}
	}
	if n != 10 {
		t.Errorf("checked %d events, want 10", n)
	}
}

func TestLabels(t *testing.T) {
	want := [][]string{
		{"td-hob", "cfv", "secure-boot", "pk", "kek", "db", "dbx", "separator", "acpi-loader", "acpi-rsdp", "acpi-tables", "boot-order", "boot0000"},
		{"kernel", "efi-action-calling-efi-application", "separator", "efi-action-exit-boot-services", "efi-action-exit-boot-services-returned"},
		{"cmdline", "initrd"},
	}
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			g, _ := load(t, name)
			events, err := Parse([]byte(g.EventLog))
			if err != nil {
				t.Fatal(err)
			}
			Label(events)
			var got [3][]string
			for _, e := range events {
				if e.IMR < 3 {
					got[e.IMR] = append(got[e.IMR], e.Label)
				} else if e.Label != e.Name {
					t.Errorf("runtime event %d labelled %q", e.Index, e.Label)
				}
			}
			for i := range want {
				if strings.Join(got[i], ",") != strings.Join(want[i], ",") {
					t.Errorf("RTMR%d labels %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestRTMR3Facts(t *testing.T) {
	cases := []struct {
		fixture                                   string
		appID, compose, instance, osImage, kpName string
		markers                                   string
		appEvents                                 int
	}{
		{"quote-report.json", "3763bc34552cf3a27ff71ad5f7a90471562a1a2d", "3763bc34552cf3a27ff71ad5f7a90471562a1a2df552dfc1998cba2d60da27e7", "c3714eb66990eace777b4e664c16e09375dec4c9", "", "local-sgx", "system-preparing,boot-mr-done,system-ready", 1},
		{"tdx-lite-getquote.json", "86b0e55f2fa8e4fb69d890f14f54d5612707646e", "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9", "050bf89570575fe8fab4cb8f0a62a9e64efe8ead", "07a2388c7a6a1b6a646d443f1517990a4ec294471d63146cda9d56972765051d", "kms", "system-preparing,boot-mr-done,system-ready", 0},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			g, _ := load(t, c.fixture)
			events, err := Parse([]byte(g.EventLog))
			if err != nil {
				t.Fatal(err)
			}
			f := ExtractRTMR3(events)
			if f.AppID.String() != c.appID || f.ComposeHash.String() != c.compose || f.InstanceID.String() != c.instance || f.OSImageHash.String() != c.osImage {
				t.Errorf("facts %+v", f)
			}
			if f.KeyProvider == nil || f.KeyProvider.Name != c.kpName || f.KeyProvider.ID == "" {
				t.Errorf("key provider %+v", f.KeyProvider)
			}
			if strings.Join(f.Markers, ",") != c.markers || len(f.AppEvents) != c.appEvents || len(f.Problems) != 0 {
				t.Errorf("markers %v app events %v problems %v", f.Markers, f.AppEvents, f.Problems)
			}
		})
	}
}

func TestTamperedRuntimePayloadDetected(t *testing.T) {
	g, q := load(t, "quote-report.json")
	events, err := Parse([]byte(g.EventLog))
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if !events[i].IsRuntime() {
			continue
		}
		tampered := append([]Event(nil), events...)
		tampered[i].Payload = append(append(Hex(nil), events[i].Payload...), 'x')
		probs := CheckRuntimeDigests(tampered)
		if len(probs) != 1 || probs[0].Index != i || probs[0].Name != events[i].Name {
			t.Errorf("tampering %s: problems %+v", events[i].Name, probs)
		}
		if bytes.Equal(Replay(tampered)[3], q.Report.RTMR[3]) {
			t.Errorf("tampering %s still replays to the quote's RTMR3", events[i].Name)
		}
	}
}

func TestRuntimeDigestFormats(t *testing.T) {
	// Upstream dstack's documented examples of both formats.
	if got := string(RuntimePreimage(VersionV2, "compose-hash", []byte{0xab, 0xcd})); got != `{"name":"compose-hash","payload":"abcd","type":134217729}` {
		t.Errorf("v2 preimage %s", got)
	}
	if got := string(RuntimePreimage(VersionV2, "event\"with\\special\nchars", []byte{0xff})); got != `{"name":"event\"with\\special\nchars","payload":"ff","type":134217729}` {
		t.Errorf("v2 escaping %s", got)
	}
	if got := string(RuntimePreimage(VersionV2, "\x08\x0c\n\r\t\x01", nil)); !strings.Contains(got, `"name":"\b\f\n\r\t\u0001"`) {
		t.Errorf("v2 control escaping %s", got)
	}
	if got := RuntimePreimage(VersionV1, "app-id", []byte{0xde, 0xad}); !bytes.Equal(got, []byte{0x01, 0x00, 0x00, 0x08, ':', 'a', 'p', 'p', '-', 'i', 'd', ':', 0xde, 0xad}) {
		t.Errorf("v1 preimage %x", got)
	}
}

func TestV2EventChecked(t *testing.T) {
	name, payload := "compose-hash", []byte{1, 2}
	digest := RuntimeDigest(VersionV2, name, payload)
	pre := RuntimePreimage(VersionV2, name, payload)
	mk := func(d, p string) string {
		return `[{"imr":3,"event_type":134217729,"digest":"` + d + `","event":"compose-hash","event_payload":"0102","version":2` + p + `}]`
	}
	good, err := Parse([]byte(mk(Hex(digest).String(), `,"preimage":"`+Hex(pre).String()+`"`)))
	if err != nil {
		t.Fatal(err)
	}
	if p := CheckRuntimeDigests(good); len(p) != 0 {
		t.Errorf("good v2 event: %+v", p)
	}
	noPre, _ := Parse([]byte(mk(Hex(digest).String(), "")))
	if p := CheckRuntimeDigests(noPre); len(p) != 1 {
		t.Errorf("v2 event without pre-image accepted")
	}
	badPre, _ := Parse([]byte(mk(Hex(digest).String(), `,"preimage":"00"`)))
	if p := CheckRuntimeDigests(badPre); len(p) != 1 {
		t.Errorf("v2 event with wrong pre-image accepted")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ in, field string }{
		{`{}`, "JSON list"},
		{`[{"event_type":1,"digest":""}]`, "imr: missing"},
		{`[{"imr":4,"event_type":1}]`, "imr: 4 out of range"},
		{`[{"imr":0}]`, "event_type: missing"},
		{`[{"imr":0,"event_type":-1}]`, "event_type"},
		{`[{"imr":0,"event_type":1,"digest":"zz"}]`, "event 0: digest: not hex"},
		{`[{"imr":0,"event_type":1,"digest":"00"}]`, "digest: 1 bytes"},
		{`[{"imr":0,"event_type":1}]`, "digest: missing"},
		{`[{"imr":3,"event_type":134217729,"event_payload":"g"}]`, "event_payload: not hex"},
		{`[{"imr":3,"event_type":134217729,"version":3}]`, "version"},
		{`"[1,"`, "want a JSON list"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in))
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %v, want one naming %q", c.in, err, c.field)
		}
	}
}

func TestExtractProblems(t *testing.T) {
	ev := func(name, payload string) Event {
		return Event{IMR: 3, EventType: RuntimeEventType, Name: name, Payload: Hex(payload), Version: 1}
	}
	f1 := ExtractRTMR3([]Event{
		ev("system-preparing", ""), ev("app-id", "a"), ev("app-id", "b"),
		ev("key-provider", "nope"), {IMR: 3, EventType: 1, Digest: make(Hex, 48)},
	})
	if f1.AppID.String() != Hex("a").String() {
		t.Errorf("first app-id must stand, got %q", f1.AppID)
	}
	f2 := ExtractRTMR3([]Event{ev("system-ready", ""), ev("system-preparing", ""), ev("compose-hash", "c")})
	want := []string{"not a dstack runtime event", "key-provider payload", "app-id measured 2 times", "markers out of boot order", "compose-hash measured after system-ready"}
	all := strings.Join(append(f1.Problems, f2.Problems...), "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("problems %q lack %q", all, w)
		}
	}
}

// compactLog keeps a few events of a genuine log (small seeds keep the fuzzer's minimizer fast).
func compactLog(t testing.TB, name string) []byte {
	g, _ := load(t, name)
	var evs []json.RawMessage
	if err := json.Unmarshal([]byte(g.EventLog), &evs); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]json.RawMessage{evs[0], evs[2], evs[9], evs[len(evs)-4], evs[len(evs)-1]})
	return b
}

func FuzzParse(f *testing.F) {
	for _, name := range fixtures {
		f.Add(compactLog(f, name))
	}
	f.Add([]byte(`[{"imr":3,"event_type":134217729,"event":"x","event_payload":"00","version":2,"preimage":"00"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := Parse(data)
		if err != nil {
			return
		}
		Label(events)
		_ = Replay(events)
		_ = CheckRuntimeDigests(events)
		_ = ExtractRTMR3(events)
	})
}

func BenchmarkParseReplay(b *testing.B) {
	g, _ := load(b, "quote-report.json")
	b.ReportAllocs()
	for b.Loop() {
		events, err := Parse([]byte(g.EventLog))
		if err != nil {
			b.Fatal(err)
		}
		_ = Replay(events)
	}
}

// The lite fixture's runtime events carry no digest (dstack strips them); the full one's all do.
// Either way the recomputed digests replay to the quote (TestReplayGenuine).
func TestRuntimeCounts(t *testing.T) {
	for name, allStripped := range map[string]bool{"quote-report.json": false, "tdx-lite-getquote.json": true} {
		g, _ := load(t, name)
		events, err := Parse([]byte(g.EventLog))
		if err != nil {
			t.Fatal(err)
		}
		n, stripped := RuntimeCounts(events)
		if n == 0 || (allStripped && stripped != n) || (!allStripped && stripped != 0) {
			t.Errorf("%s: %d runtime events, %d stripped", name, n, stripped)
		}
		for i := range events {
			if events[i].DigestStripped() != (events[i].IsRuntime() && len(events[i].Digest) == 0) {
				t.Errorf("%s: event %d", name, i)
			}
		}
	}
}

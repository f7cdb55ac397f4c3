package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
)

// kmsInfo is a dstack guest agent's Info response as Phala's trust center ships them: the KMS
// values the CVM computed itself next to its registers and event log (no quote).
type kmsInfo struct {
	TCBInfo         string `json:"tcb_info"`
	MRAggregated    string `json:"mr_aggregated"`
	MRKeyProvider   string `json:"mr_key_provider"`
	KeyProviderInfo string `json:"key_provider_info"`
	ComposeHash     string `json:"compose_hash"`
	AppID           string `json:"app_id"`
}

type tcbInfo struct {
	MRTD     string          `json:"mrtd"`
	RTMR0    string          `json:"rtmr0"`
	RTMR1    string          `json:"rtmr1"`
	RTMR2    string          `json:"rtmr2"`
	RTMR3    string          `json:"rtmr3"`
	EventLog json.RawMessage `json:"event_log"`
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// TestMRAggregatedPhalaKMS recomputes the mr_aggregated 36 real Phala KMS CVMs reported for
// themselves, from their registers and event logs. Info carries no quote, so MRCONFIGID is not
// known: dstack writes either zeros or 0x01 ‖ compose hash there, and exactly one of the two
// must give the CVM's value (the formula's tail is proven on quotes in package verify).
func TestMRAggregatedPhalaKMS(t *testing.T) {
	dir := testvectors.Shared(t, "real-attestations/phala-trust-center/kmsInfo")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no kmsInfo files in %s: %v", dir, err)
	}
	matched, keyProviders := 0, 0
	for _, f := range files {
		var info kmsInfo
		if err := json.Unmarshal(testvectors.ReadShared(t, "real-attestations/phala-trust-center/kmsInfo/"+filepath.Base(f)), &info); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var tcb tcbInfo
		if err := json.Unmarshal([]byte(info.TCBInfo), &tcb); err != nil {
			t.Fatalf("%s tcb_info: %v", f, err)
		}
		events, err := eventlog.Parse(tcb.EventLog)
		if err != nil {
			t.Fatalf("%s event_log: %v", f, err)
		}
		rt := RuntimeEvents(events)
		rtmr3 := ReplayRTMR3(rt, false)
		if !bytes.Equal(rtmr3, mustHex(t, tcb.RTMR3)) {
			t.Fatalf("%s: runtime events replay to %x, tcb_info has %s", f, rtmr3, tcb.RTMR3)
		}
		zero := make([]byte, 48)
		v1 := make([]byte, 48)
		v1[0] = 1
		copy(v1[1:], mustHex(t, info.ComposeHash))
		got := 0
		for _, cfg := range [][]byte{zero, v1} {
			agg := MRAggregated(mustHex(t, tcb.MRTD), mustHex(t, tcb.RTMR0), mustHex(t, tcb.RTMR1), mustHex(t, tcb.RTMR2), rtmr3, cfg, zero, zero)
			if hex.EncodeToString(agg) == info.MRAggregated {
				got++
			}
		}
		if got != 1 {
			t.Errorf("%s: mr_aggregated %s matched by %d of the two MRCONFIGID forms, want 1", filepath.Base(f), info.MRAggregated, got)
			continue
		}
		matched++
		// The key-provider event's payload is the key_provider_info the CVM reports.
		kp := FindPayload(rt, eventlog.EventKeyProvider)
		if string(kp) != info.KeyProviderInfo {
			t.Errorf("%s: key-provider payload %q, Info says %q", filepath.Base(f), kp, info.KeyProviderInfo)
		}
		if app := hex.EncodeToString(FindPayload(rt, eventlog.EventAppID)); app != info.AppID {
			t.Errorf("%s: app-id %s, Info says %s", filepath.Base(f), app, info.AppID)
		}
		if info.MRKeyProvider != "" {
			keyProviders++
			if got := hex.EncodeToString(MRKeyProvider(kp)); got != info.MRKeyProvider {
				t.Errorf("%s: mr_key_provider %s, the CVM reported %s", filepath.Base(f), got, info.MRKeyProvider)
			}
		}
	}
	t.Logf("mr_aggregated matched on %d of %d Phala KMS CVMs; mr_key_provider on %d", matched, len(files), keyProviders)
	if keyProviders == 0 {
		t.Error("no kmsInfo file carries mr_key_provider any more: the key-provider hash went unchecked")
	}
}

// runtimeEvent builds a dstack runtime event as the guest logs it.
func runtimeEvent(name string, payload []byte) eventlog.Event {
	return eventlog.Event{IMR: 3, EventType: eventlog.RuntimeEventType, Name: name, Payload: payload, Version: 1,
		Digest: eventlog.RuntimeDigest(1, name, payload)}
}

func TestComputeViews(t *testing.T) {
	kp := []byte(`{"name":"kms","id":"abcd"}`)
	events := []eventlog.Event{
		{IMR: 0, EventType: 0x80000001, Digest: bytes.Repeat([]byte{7}, 48)}, // a boot event: not a runtime event
		runtimeEvent("system-preparing", nil),
		runtimeEvent("app-id", bytes.Repeat([]byte{0xaa}, 20)),
		runtimeEvent("compose-hash", bytes.Repeat([]byte{0xbb}, 32)),
		runtimeEvent("instance-id", bytes.Repeat([]byte{0xcc}, 20)),
		runtimeEvent("boot-mr-done", nil),
		runtimeEvent("key-provider", kp),
		runtimeEvent("system-ready", nil),
		runtimeEvent("app-id", bytes.Repeat([]byte{0xdd}, 20)), // from the app: ignored
	}
	reg := func(b byte) []byte { return bytes.Repeat([]byte{b}, 48) }
	zero := make([]byte, 48)
	var full [][]byte
	for _, e := range events[1:] {
		full = append(full, e.Digest)
	}
	in := Inputs{MRTD: reg(1), RTMR: [4][]byte{reg(2), reg(3), reg(4), eventlog.ReplayDigests(full)},
		MRConfigID: zero, MROwner: zero, MROwnerConfig: zero, Events: events, PPID: []byte("0123456789abcdef"),
		OSImageHash: bytes.Repeat([]byte{0xee}, 32), TCBStatus: "UpToDate"}

	// Independent statement of the formulas, byte strings concatenated by hand.
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	kpSum := sha256.Sum256(kp)
	early := eventlog.ReplayDigests(full[:5])

	for _, tc := range []struct {
		name          string
		bootTime      bool
		cfg           []byte
		wantAgg, wSys string
		wantKP        string
	}{
		{"key-release view", false, zero, sum(cat(reg(1), reg(2), reg(3), reg(4), in.RTMR[3])), sum(cat(reg(1), reg(2), reg(3), reg(4), kpSum[:])), hex.EncodeToString(kp)},
		{"boot-time view", true, zero, sum(cat(reg(1), reg(2), reg(3), reg(4), early)), sum(cat(reg(1), reg(2), reg(3), reg(4), zero[:32])), ""},
		{"config id set", false, reg(9), sum(cat(reg(1), reg(2), reg(3), reg(4), in.RTMR[3], reg(9), zero, zero)), sum(cat(reg(1), reg(2), reg(3), reg(4), kpSum[:])), hex.EncodeToString(kp)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := in
			in.BootTimeMR, in.MRConfigID = tc.bootTime, tc.cfg
			b, err := Compute(in)
			if err != nil {
				t.Fatal(err)
			}
			dev := sha256.Sum256(in.PPID)
			want := BootInfo{TEEVariant: "dstack-tdx", MRAggregated: tc.wantAgg, OSImageHash: strings.Repeat("ee", 32), MRSystem: tc.wSys,
				AppID: strings.Repeat("aa", 20), ComposeHash: strings.Repeat("bb", 32), InstanceID: strings.Repeat("cc", 20),
				DeviceID: hex.EncodeToString(dev[:]), KeyProviderInfo: tc.wantKP, TCBStatus: "UpToDate", AdvisoryIDs: []string{}}
			gotJSON, _ := json.Marshal(b)
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("got  %s\nwant %s", gotJSON, wantJSON)
			}
		})
	}

	t.Run("refusals", func(t *testing.T) {
		for name, mutate := range map[string]func(*Inputs){
			"RTMR3 not the replay": func(in *Inputs) { in.RTMR[3] = reg(5) },
			"short MRTD":           func(in *Inputs) { in.MRTD = reg(1)[:47] },
			"no PPID":              func(in *Inputs) { in.PPID = nil },
			"no MROWNER":           func(in *Inputs) { in.MROwner = nil },
		} {
			in := in
			mutate(&in)
			if _, err := Compute(in); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
	})
}

func TestBootInfoJSONKeys(t *testing.T) {
	b, err := json.Marshal(BootInfo{AdvisoryIDs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	// dstack-verifier's PolicyBootInfo field names (serde rename_all = "camelCase").
	want := `{"teeVariant":"","mrAggregated":"","osImageHash":"","mrSystem":"","appId":"","composeHash":"","instanceId":"","deviceId":"","keyProviderInfo":"","tcbStatus":"","advisoryIds":[]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

// The request body of auth-simple's README, and the body dstack's KMS sends (every key).
const (
	readmeBootInfo = `{"teeVariant": "dstack-tdx", "mrAggregated": "0x11", "osImageHash": "0x22", "appId": "0x33", "composeHash": "0x44",
		"instanceId": "0x55", "deviceId": "0x66", "tcbStatus": "UpToDate", "advisoryIds": []}`
	kmsBootInfo = `{"teeVariant":"dstack-tdx","mrAggregated":"aa","osImageHash":"bb","mrSystem":"cc","appId":"dd","composeHash":"ee",
		"instanceId":"","deviceId":"ff","keyProviderInfo":"7b7d","tcbStatus":"SWHardeningNeeded","advisoryIds":["INTEL-SA-00837"]}`
)

func TestParseBootInfo(t *testing.T) {
	b, err := ParseBootInfo([]byte(readmeBootInfo))
	if err != nil {
		t.Fatal(err)
	}
	if b.MRAggregated != "0x11" || b.TCBStatus != "UpToDate" || b.MRSystem != "" || b.AdvisoryIDs == nil {
		t.Errorf("%+v", b)
	}
	k, err := ParseBootInfo([]byte(kmsBootInfo))
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyProviderInfo != "7b7d" || k.MRSystem != "cc" || len(k.AdvisoryIDs) != 1 {
		t.Errorf("%+v", k)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", `{`, "boot info: unexpected end"},
		{"list", `[]`, "boot info: json: cannot unmarshal array"},
		{"null", `null`, "want an object, got null"},
		{"missing required", `{"mrAggregated": "", "osImageHash": "", "appId": "", "composeHash": "", "instanceId": ""}`, "deviceId is required"},
		{"required null", strings.Replace(readmeBootInfo, `"0x66"`, `null`, 1), "deviceId: want a string, got null"},
		{"optional null", strings.Replace(readmeBootInfo, `"UpToDate"`, `null`, 1), "tcbStatus: want a string, got null"},
		{"number", strings.Replace(readmeBootInfo, `"0x33"`, `51`, 1), "appId: want a string, got 51"},
		{"advisories not a list", strings.Replace(readmeBootInfo, `[]`, `"x"`, 1), "advisoryIds: want a list of strings"},
		{"advisory not a string", strings.Replace(readmeBootInfo, `[]`, `["a", 1]`, 1), "advisoryIds[1]: want a string"},
	} {
		if _, err := ParseBootInfo([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// Unknown keys are ignored, as auth-simple's schema strips them.
	if _, err := ParseBootInfo([]byte(strings.Replace(readmeBootInfo, `{`, `{"extra": {"x": [1]}, "keyProviderInfo": 5,`, 1))); err != nil {
		t.Errorf("unknown keys: %v", err)
	}
}

// FuzzParseBootInfo: never a panic; what parses survives a round trip through its JSON.
func FuzzParseBootInfo(f *testing.F) {
	f.Add([]byte(readmeBootInfo))
	f.Add([]byte(kmsBootInfo))
	f.Add([]byte(`{"advisoryIds": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBootInfo(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseBootInfo(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if out2, _ := json.Marshal(again); !bytes.Equal(out, out2) {
			t.Fatalf("round trip %s != %s", out, out2)
		}
	})
}

// Package policy computes the values dstack's KMS decides key release on (its BootInfo:
// mrAggregated, mrSystem, deviceId, ...) and evaluates dstack's auth-simple allow-list over them,
// as the KMS's /bootAuth/app and /bootAuth/kms webhooks do.
//
// The formulas follow dstack-attest (attestation.rs: decode_app_info_ex, decode_mr_tdx_from_quote)
// and the decision rules kms/auth-simple (index.ts: checkBoot), both read as specifications. The
// package works on plain inputs; package verify decides when those inputs are attested.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
)

// TEEVariantTDX is dstack's TeeVariant name for a TDX CVM.
const TEEVariantTDX = "dstack-tdx"

// BootInfo is the body dstack's KMS posts to its auth webhook (dstack-verifier's PolicyBootInfo):
// camelCase keys, byte strings as lowercase hex without 0x. Values received from a KMS are kept as
// sent; the decision functions compare them the way auth-simple does (case-insensitive, 0x
// optional).
type BootInfo struct {
	TEEVariant   string `json:"teeVariant"`
	MRAggregated string `json:"mrAggregated"`
	OSImageHash  string `json:"osImageHash"`
	MRSystem     string `json:"mrSystem"`
	AppID        string `json:"appId"`
	ComposeHash  string `json:"composeHash"`
	InstanceID   string `json:"instanceId"`
	DeviceID     string `json:"deviceId"`
	// KeyProviderInfo is the key-provider event's payload (JSON {"name","id"}) as hex.
	KeyProviderInfo string `json:"keyProviderInfo"`
	// TCBStatus is Intel's TCB status of the platform; empty when it was not evaluated (no
	// collateral), which auth-simple's default allow-list (["UpToDate"]) refuses.
	TCBStatus   string   `json:"tcbStatus"`
	AdvisoryIDs []string `json:"advisoryIds"`
}

// Inputs are the facts a BootInfo is computed from. Registers are 48 bytes each.
type Inputs struct {
	MRTD []byte
	// RTMR are the quote's RTMR0..3. RTMR3 must equal the replay of the runtime events, as
	// dstack's quote verification requires before any value is derived.
	RTMR                               [4][]byte
	MRConfigID, MROwner, MROwnerConfig []byte
	// Events is the event log; only its dstack runtime events (event type 0x08000001, in log
	// order) are used, as dstack builds its runtime event list.
	Events []eventlog.Event
	// BootTimeMR selects dstack's boot-time view (decode_app_info_ex with boottime_mr, which the
	// KMS uses to authorize SignCert): RTMR3′ is replayed up to and including boot-mr-done and
	// the key provider is left out of mrSystem. False is the key-release view (bootAuth/app and
	// bootAuth/kms, and dstack's verifier): RTMR3′ is the replay of every runtime event.
	BootTimeMR bool
	// PPID is the platform's PPID from the PCK certificate; deviceId is its SHA-256.
	PPID []byte
	// OSImageHash is the os_image_hash the CVM is held to.
	OSImageHash []byte
	TCBStatus   string
	AdvisoryIDs []string
}

const regLen = 48

// Compute derives the BootInfo dstack's KMS would send for these facts.
func Compute(in Inputs) (*BootInfo, error) {
	for _, r := range []struct {
		name string
		v    []byte
	}{{"MRTD", in.MRTD}, {"RTMR0", in.RTMR[0]}, {"RTMR1", in.RTMR[1]}, {"RTMR2", in.RTMR[2]}, {"RTMR3", in.RTMR[3]},
		{"MRCONFIGID", in.MRConfigID}, {"MROWNER", in.MROwner}, {"MROWNERCONFIG", in.MROwnerConfig}} {
		if len(r.v) != regLen {
			return nil, fmt.Errorf("%s is %d bytes, want %d", r.name, len(r.v), regLen)
		}
	}
	if len(in.PPID) == 0 {
		return nil, fmt.Errorf("no PPID: deviceId is the SHA-256 of the PCK certificate's PPID")
	}
	rt := RuntimeEvents(in.Events)
	if full := ReplayRTMR3(rt, false); !bytes.Equal(full, in.RTMR[3]) {
		return nil, fmt.Errorf("the runtime events replay to RTMR3 %x, the quote has %x", full, in.RTMR[3])
	}
	rtmr3 := ReplayRTMR3(rt, in.BootTimeMR)
	var kpInfo []byte
	if !in.BootTimeMR {
		kpInfo = FindPayload(rt, eventlog.EventKeyProvider)
	}
	mrKP := MRKeyProvider(kpInfo)
	adv := in.AdvisoryIDs
	if adv == nil {
		adv = []string{}
	}
	dev := sha256.Sum256(in.PPID)
	return &BootInfo{
		TEEVariant:      TEEVariantTDX,
		MRAggregated:    hex.EncodeToString(MRAggregated(in.MRTD, in.RTMR[0], in.RTMR[1], in.RTMR[2], rtmr3, in.MRConfigID, in.MROwner, in.MROwnerConfig)),
		OSImageHash:     hex.EncodeToString(in.OSImageHash),
		MRSystem:        hex.EncodeToString(MRSystem(in.MRTD, in.RTMR[0], in.RTMR[1], in.RTMR[2], mrKP)),
		AppID:           hex.EncodeToString(FindPayload(rt, eventlog.EventAppID)),
		ComposeHash:     hex.EncodeToString(FindPayload(rt, eventlog.EventComposeHash)),
		InstanceID:      hex.EncodeToString(FindPayload(rt, eventlog.EventInstanceID)),
		DeviceID:        hex.EncodeToString(dev[:]),
		KeyProviderInfo: hex.EncodeToString(kpInfo),
		TCBStatus:       in.TCBStatus,
		AdvisoryIDs:     adv,
	}, nil
}

// RuntimeEvents are the log's dstack runtime events in log order, whatever register they name:
// dstack's runtime event list is every event of the runtime type.
func RuntimeEvents(events []eventlog.Event) []eventlog.Event {
	var out []eventlog.Event
	for _, e := range events {
		if e.IsRuntime() {
			out = append(out, e)
		}
	}
	return out
}

// ReplayRTMR3 folds the runtime events' digests (recomputed from name and payload) from zero;
// with bootTime it stops after the first boot-mr-done event, which is included.
func ReplayRTMR3(runtime []eventlog.Event, bootTime bool) []byte {
	mr := make([]byte, regLen)
	for i := range runtime {
		e := &runtime[i]
		mr = eventlog.ExtendDigest(mr, eventlog.RuntimeDigest(e.Version, e.Name, e.Payload))
		if bootTime && e.Name == eventlog.EventBootMRDone {
			break
		}
	}
	return mr
}

// FindPayload is the payload of the first runtime event named name before system-ready (events
// after it come from the app), or nil.
func FindPayload(runtime []eventlog.Event, name string) []byte {
	for _, e := range runtime {
		if e.Name == eventlog.EventSystemReady {
			break
		}
		if e.Name == name {
			return e.Payload
		}
	}
	return nil
}

// MRKeyProvider is SHA-256 of the key-provider payload, or 32 zero bytes when it is empty.
func MRKeyProvider(keyProviderInfo []byte) []byte {
	if len(keyProviderInfo) == 0 {
		return make([]byte, sha256.Size)
	}
	s := sha256.Sum256(keyProviderInfo)
	return s[:]
}

// MRSystem is SHA-256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ mr_key_provider).
func MRSystem(mrtd, rtmr0, rtmr1, rtmr2, mrKeyProvider []byte) []byte {
	h := sha256.New()
	for _, b := range [][]byte{mrtd, rtmr0, rtmr1, rtmr2, mrKeyProvider} {
		h.Write(b)
	}
	return h.Sum(nil)
}

// MRAggregated is SHA-256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3′), followed by MRCONFIGID ‖
// MROWNER ‖ MROWNERCONFIG only when any of the three is non-zero.
func MRAggregated(mrtd, rtmr0, rtmr1, rtmr2, rtmr3, mrConfigID, mrOwner, mrOwnerConfig []byte) []byte {
	h := sha256.New()
	for _, b := range [][]byte{mrtd, rtmr0, rtmr1, rtmr2, rtmr3} {
		h.Write(b)
	}
	if !allZero(mrConfigID) || !allZero(mrOwner) || !allZero(mrOwnerConfig) {
		h.Write(mrConfigID)
		h.Write(mrOwner)
		h.Write(mrOwnerConfig)
	}
	return h.Sum(nil)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// ParseBootInfo reads a webhook request body the way auth-simple validates it (its zod schema):
// mrAggregated, osImageHash, appId, composeHash, instanceId and deviceId are required strings;
// teeVariant, tcbStatus and mrSystem optional strings (absent = ""), advisoryIds an optional list
// of strings; other keys are ignored, except that a string keyProviderInfo is kept. Errors name
// the field.
func ParseBootInfo(data []byte) (*BootInfo, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("boot info: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("boot info: want an object, got null")
	}
	b := &BootInfo{AdvisoryIDs: []string{}}
	for _, f := range []struct {
		key      string
		dst      *string
		required bool
	}{
		{"mrAggregated", &b.MRAggregated, true}, {"osImageHash", &b.OSImageHash, true}, {"appId", &b.AppID, true},
		{"composeHash", &b.ComposeHash, true}, {"instanceId", &b.InstanceID, true}, {"deviceId", &b.DeviceID, true},
		{"teeVariant", &b.TEEVariant, false}, {"tcbStatus", &b.TCBStatus, false}, {"mrSystem", &b.MRSystem, false},
	} {
		raw, ok := m[f.key]
		if !ok {
			if f.required {
				return nil, fmt.Errorf("boot info: %s is required", f.key)
			}
			continue
		}
		if err := jsonString(raw, f.dst); err != nil {
			return nil, fmt.Errorf("boot info: %s: %w", f.key, err)
		}
	}
	if raw, ok := m["advisoryIds"]; ok {
		var l []json.RawMessage
		if err := json.Unmarshal(raw, &l); err != nil || l == nil {
			return nil, fmt.Errorf("boot info: advisoryIds: want a list of strings")
		}
		b.AdvisoryIDs = make([]string, len(l))
		for i, r := range l {
			if err := jsonString(r, &b.AdvisoryIDs[i]); err != nil {
				return nil, fmt.Errorf("boot info: advisoryIds[%d]: %w", i, err)
			}
		}
	}
	if raw, ok := m["keyProviderInfo"]; ok {
		_ = jsonString(raw, &b.KeyProviderInfo) // not in auth-simple's schema: kept when a string
	}
	return b, nil
}

func jsonString(raw json.RawMessage, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return fmt.Errorf("want a string, got %s", truncate(string(raw), 20))
	}
	return json.Unmarshal(raw, dst)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

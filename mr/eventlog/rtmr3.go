package eventlog

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Names of the runtime events dstack's guest (dstack-util system_setup) extends into RTMR3.
const (
	EventSystemPreparing = "system-preparing" // marker: boot-time measurement starts
	EventAppID           = "app-id"
	EventComposeHash     = "compose-hash"
	EventInitScriptHash  = "init-script-hash" // one per init script, in order
	EventGPUPolicyHash   = "gpu-policy-hash"
	EventGPUAttestation  = "gpu-attestation"
	EventInstanceID      = "instance-id"
	EventBootMRDone      = "boot-mr-done" // marker: the app identity is measured
	EventOSImageHash     = "os-image-hash"
	EventKeyProvider     = "key-provider" // JSON {"name":..,"id":..}
	EventStorageFS       = "storage-fs"
	EventSystemReady     = "system-ready" // marker: the app starts; later events come from it
)

// markerEvents carry no payload; their order frames the boot.
var markerEvents = map[string]bool{EventSystemPreparing: true, EventBootMRDone: true, EventSystemReady: true}

// singleValued are the identity events that must appear at most once: a second one would
// let a log show one value while the register also holds another.
var singleValued = []string{EventAppID, EventComposeHash, EventInstanceID, EventOSImageHash, EventKeyProvider, EventStorageFS, EventGPUPolicyHash}

// KeyProvider is the decoded key-provider event payload.
type KeyProvider struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// NamedPayload is a runtime event dstack's boot does not define (emitted by the app, or a
// newer guest).
type NamedPayload struct {
	Index   int    `json:"index"`
	Name    string `json:"event"`
	Payload Hex    `json:"payload"`
	// Text is the payload when it is printable UTF-8.
	Text string `json:"text,omitempty"`
}

// RTMR3Facts is what the runtime events in RTMR3 attest to.
type RTMR3Facts struct {
	AppID            Hex          `json:"app_id,omitempty"`
	ComposeHash      Hex          `json:"compose_hash,omitempty"`
	InstanceID       Hex          `json:"instance_id,omitempty"`
	OSImageHash      Hex          `json:"os_image_hash,omitempty"`
	KeyProviderRaw   Hex          `json:"key_provider_info,omitempty"`
	KeyProvider      *KeyProvider `json:"key_provider,omitempty"`
	StorageFS        string       `json:"storage_fs,omitempty"`
	InitScriptHashes []Hex        `json:"init_script_hashes,omitempty"`
	GPUPolicyHash    Hex          `json:"gpu_policy_hash,omitempty"`
	GPUAttestation   Hex          `json:"gpu_attestation,omitempty"`
	// Markers lists the marker events in log order.
	Markers []string `json:"markers"`
	// AppEvents are runtime events after system-ready: emitted by the running app.
	AppEvents []NamedPayload `json:"app_events,omitempty"`
	// Unknown are other runtime events before system-ready.
	Unknown []NamedPayload `json:"unknown_events,omitempty"`
	// Problems are structural findings: duplicated identity events, markers out of order,
	// identity events measured after system-ready, undecodable key-provider payload, non-runtime
	// events in RTMR3.
	Problems []string `json:"problems,omitempty"`
}

// ExtractRTMR3 collects the facts of the RTMR3 runtime events.
func ExtractRTMR3(events []Event) *RTMR3Facts {
	f := &RTMR3Facts{Markers: []string{}}
	count := map[string]int{}
	ready := false
	for i := range events {
		e := &events[i]
		if e.IMR != RuntimeIMR {
			continue
		}
		if !e.IsRuntime() {
			f.Problems = append(f.Problems, fmt.Sprintf("event %d in RTMR3 has type 0x%x, not a dstack runtime event", e.Index, e.EventType))
			continue
		}
		count[e.Name]++
		if markerEvents[e.Name] {
			f.Markers = append(f.Markers, e.Name)
			if len(e.Payload) != 0 {
				f.Problems = append(f.Problems, fmt.Sprintf("event %d: marker %s has a %d-byte payload", e.Index, e.Name, len(e.Payload)))
			}
			if e.Name == EventSystemReady {
				ready = true
			}
			continue
		}
		if ready {
			if isBootEvent(e.Name) {
				f.Problems = append(f.Problems, fmt.Sprintf("event %d: %s measured after system-ready", e.Index, e.Name))
			}
			f.AppEvents = append(f.AppEvents, named(e))
			continue
		}
		if count[e.Name] > 1 && !isRepeatable(e.Name) {
			continue // reported below; the first value stands
		}
		switch e.Name {
		case EventAppID:
			f.AppID = e.Payload
		case EventComposeHash:
			f.ComposeHash = e.Payload
		case EventInstanceID:
			f.InstanceID = e.Payload
		case EventOSImageHash:
			f.OSImageHash = e.Payload
		case EventKeyProvider:
			f.KeyProviderRaw = e.Payload
			var kp KeyProvider
			if err := json.Unmarshal(e.Payload, &kp); err != nil {
				f.Problems = append(f.Problems, fmt.Sprintf("event %d: key-provider payload is not {name,id} JSON: %v", e.Index, err))
			} else {
				f.KeyProvider = &kp
			}
		case EventStorageFS:
			f.StorageFS = string(e.Payload)
		case EventInitScriptHash:
			f.InitScriptHashes = append(f.InitScriptHashes, e.Payload)
		case EventGPUPolicyHash:
			f.GPUPolicyHash = e.Payload
		case EventGPUAttestation:
			f.GPUAttestation = e.Payload
		default:
			f.Unknown = append(f.Unknown, named(e))
		}
	}
	for _, n := range singleValued {
		if count[n] > 1 {
			f.Problems = append(f.Problems, fmt.Sprintf("%s measured %d times", n, count[n]))
		}
	}
	for n := range markerEvents {
		if count[n] > 1 {
			f.Problems = append(f.Problems, fmt.Sprintf("marker %s appears %d times", n, count[n]))
		}
	}
	if p := markerOrderProblem(f.Markers); p != "" {
		f.Problems = append(f.Problems, p)
	}
	return f
}

func isRepeatable(name string) bool {
	return name == EventInitScriptHash || name == EventGPUAttestation
}

func isBootEvent(name string) bool {
	switch name {
	case EventAppID, EventComposeHash, EventInstanceID, EventOSImageHash, EventKeyProvider, EventInitScriptHash, EventGPUPolicyHash:
		return true
	}
	return false
}

// markerOrderProblem checks the markers that are present come in boot order.
func markerOrderProblem(markers []string) string {
	rank := map[string]int{EventSystemPreparing: 0, EventBootMRDone: 1, EventSystemReady: 2}
	last := -1
	for _, m := range markers {
		if rank[m] < last {
			return fmt.Sprintf("markers out of boot order: %v", markers)
		}
		last = rank[m]
	}
	return ""
}

func named(e *Event) NamedPayload {
	p := NamedPayload{Index: e.Index, Name: e.Name, Payload: e.Payload}
	if utf8.Valid(e.Payload) && printable(e.Payload) {
		p.Text = string(e.Payload)
	}
	return p
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\t' {
			return false
		}
	}
	return len(b) > 0
}

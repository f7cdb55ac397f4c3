package verify

// The app itself: the app-compose document behind the attested compose hash, and MRCONFIGID,
// which binds the app's configuration into the TD at launch.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/crypto/sha3"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

// checkAppCompose checks the app-compose documents (the relying party's and the input's own)
// against RTMR3's compose hash, and finds the mr_config document the input carries for
// checkMRConfigID.
func checkAppCompose(r *Report, opts *Options, in *inputs) {
	if opts.AppCompose != nil {
		r.App.AppCompose = matchCompose(r, "app-compose", "the app-compose file given", opts.AppCompose)
	}
	if in.appCompose != nil {
		r.App.InputAppCompose = matchCompose(r, "input-app-compose", "the app-compose the input carries (tcb_info.app_compose)", in.appCompose)
	}
	if doc, src := mrConfigDocument(in.vmConfig); doc != "" {
		r.App.MRConfig = &MRConfigInfo{Document: doc, DocumentSource: src}
	}
}

func matchCompose(r *Report, name, what string, doc []byte) *ComposeCheck {
	attested := r.App.ComposeHash
	form, forms, formErr := MatchCompose(doc, attested)
	if len(forms) == 0 {
		r.check(name, false, "%s is not an app-compose document: %v", what, formErr)
		return &ComposeCheck{SHA256: newComposeForm("", doc).SHA256, FormsTried: []string{}, Note: formErr.Error()}
	}
	c := &ComposeCheck{SHA256: forms[0].SHA256, FormsTried: []string{}}
	for i, f := range forms {
		if i == 0 || f.Name != forms[i-1].Name {
			c.FormsTried = append(c.FormsTried, f.Name)
		}
	}
	if formErr != nil {
		c.Note = "only its exact bytes were hashed: " + formErr.Error()
	}
	if attested == nil {
		r.check(name, false, "%s cannot be checked: the CVM attests no compose hash (no compose-hash event in RTMR3)", what)
		return c
	}
	if form == nil {
		detail := fmt.Sprintf("%s does not hash to the attested compose hash %x in any form tried (%s; SHA-256 of the bytes as given %x)",
			what, []byte(attested), strings.Join(c.FormsTried, ", "), []byte(c.SHA256))
		if c.Note != "" {
			detail += "; " + c.Note
		}
		r.check(name, false, "%s", detail)
		return c
	}
	c.Matched, c.Form = true, form.Name
	facts, err := ParseComposeFacts(doc)
	if err != nil {
		c.Note = "its facts could not be read: " + err.Error()
	} else {
		c.Facts = facts
	}
	r.check(name, true, "%s hashes to the attested compose hash %x (%s form%s)", what, []byte(attested), form.Name, formExplanation(form.Name))
	return c
}

func formExplanation(form string) string {
	switch form {
	case ComposeFormDeterministic:
		return ": keys sorted, compact, as dstack's SDK getComposeHash writes it"
	case ComposeFormNormalized:
		return ": as dstack's SDK getComposeHash(compose, normalize) writes it"
	}
	return ": the bytes as given"
}

// mrConfigDocument finds dstack's MrConfigV3 document in the input's vm_config: its mr_config
// field (a JSON string), or that of a sys-config wrapping it, or of the vm_config string
// inside that wrapper, where dstack's own readers look.
func mrConfigDocument(vmConfig []byte) (doc, source string) {
	var obj map[string]json.RawMessage
	raw := bytes.TrimSpace(vmConfig)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	if json.Unmarshal(raw, &obj) != nil {
		return "", ""
	}
	if m, ok := obj["mr_config"]; ok && json.Unmarshal(m, &s) == nil && s != "" {
		return s, "vm_config.mr_config"
	}
	if v, ok := obj["vm_config"]; ok && json.Unmarshal(v, &s) == nil {
		var inner map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &inner) == nil {
			if m, ok := inner["mr_config"]; ok && json.Unmarshal(m, &s) == nil && s != "" {
				return s, "vm_config.vm_config.mr_config"
			}
		}
	}
	return "", ""
}

// keyProviderKinds maps the key-provider event's name to dstack's KeyProviderKind: its byte
// in MRCONFIGID v2 and its name in the v3 document (dstack-types mr_config.rs).
var keyProviderKinds = map[string]keyProviderKind{"none": {0, "none"}, "local-sgx": {1, "local"}, "kms": {2, "kms"}, "tpm": {3, "tpm"}}

// keyProviderKind is dstack-types KeyProviderKind: b its byte in MRCONFIGID v2, name its
// spelling in the v3 document.
type keyProviderKind struct {
	b    byte
	name string
}

// checkMRConfigID checks the quote's MRCONFIGID in each of dstack's forms against what RTMR3
// attests: v1 = 0x01 || compose_hash; v2 = 0x02 || keccak256(compose_hash || app_id || key
// provider kind || key provider id); v3 = 0x03 || sha256("dstack-mr-config-v3:" || 0x00 ||
// document), whose fields must then agree with RTMR3. All zero means unset.
func checkMRConfigID(r *Report, q *quote.Quote) {
	id := []byte(q.Report.MRConfigID)
	if r.Quote == nil || len(id) != 48 {
		return // a guest agent Info has no TD report, so no MRCONFIGID
	}
	a := r.App
	if a.MRConfig == nil {
		a.MRConfig = &MRConfigInfo{}
	}
	info := a.MRConfig
	if bytes.Equal(id, make([]byte, 48)) {
		info.Form = "unset (all zero)"
		return
	}
	info.Version = int(id[0])
	switch id[0] {
	case 1:
		info.Form = "v1: 0x01 || compose_hash"
		if a.ComposeHash == nil {
			r.check("mr-config-id", false, "MRCONFIGID v1 binds a compose hash, but RTMR3 attests none")
			return
		}
		want := padConfigID(1, a.ComposeHash)
		r.check("mr-config-id", bytes.Equal(id, want), "MRCONFIGID v1 (0x01 || compose_hash): quote %x, from RTMR3's compose hash %x", id, want)
	case 2:
		info.Form = "v2: 0x02 || keccak256(compose_hash || app_id || key provider kind || key provider id)"
		kp, kind, kpID, why := attestedKeyProvider(r)
		switch {
		case a.ComposeHash == nil || a.AppID == nil:
			why = "RTMR3 attests no compose hash or app id"
		case len(a.ComposeHash) != 32 || len(a.AppID) != 20:
			why = fmt.Sprintf("RTMR3's compose hash (%d bytes) or app id (%d bytes) is not dstack's 32 and 20 bytes", len(a.ComposeHash), len(a.AppID))
		}
		if why != "" {
			r.check("mr-config-id", false, "MRCONFIGID v2 cannot be recomputed: %s", why)
			return
		}
		h := sha3.NewLegacyKeccak256()
		h.Write(a.ComposeHash)
		h.Write(a.AppID)
		h.Write([]byte{kind.b})
		h.Write(kpID)
		want := padConfigID(2, h.Sum(nil))
		r.check("mr-config-id", bytes.Equal(id, want), "MRCONFIGID v2 (0x02 || keccak256(compose_hash || app_id || key provider kind || id)): quote %x, "+
			"from RTMR3's compose hash, app id and key provider %s (kind %d, id %x): %x", id, kp, kind.b, kpID, want)
	case 3:
		info.Form = "v3: 0x03 || sha256(\"dstack-mr-config-v3:\" || 0x00 || mr_config document)"
		if info.Document == "" {
			r.skip("mr-config-id", false, "MRCONFIGID v3 binds an mr_config document that this input does not carry "+
				"(dstack passes it to the CVM in sys-config's mr_config, or in vm_config's); quote %x", id)
			return
		}
		want := mrConfigV3ID(info.Document)
		r.check("mr-config-id", bytes.Equal(id, want), "MRCONFIGID v3: quote %x, from the mr_config document in %s %x", id, info.DocumentSource, want)
		checkMRConfigDocument(r, info.Document)
	default:
		info.Form = fmt.Sprintf("unknown version %d", id[0])
		r.skip("mr-config-id", false, "MRCONFIGID version %d (%x) is none of dstack's forms (1, 2, 3)", id[0], id)
	}
}

func padConfigID(version byte, digest []byte) []byte {
	out := make([]byte, 48)
	out[0] = version
	copy(out[1:], digest)
	return out
}

// attestedKeyProvider decodes RTMR3's key-provider event for MRCONFIGID; why says what is
// missing.
func attestedKeyProvider(r *Report) (name string, kind keyProviderKind, id []byte, why string) {
	kp := r.App.KeyProvider
	if kp == nil {
		return "", kind, nil, "RTMR3 has no key-provider event"
	}
	k, ok := keyProviderKinds[kp.Name]
	if !ok {
		return kp.Name, kind, nil, fmt.Sprintf("key provider %q is none of dstack's (none, local-sgx, kms, tpm)", kp.Name)
	}
	id, err := hex.DecodeString(strings.TrimPrefix(kp.ID, "0x"))
	if err != nil {
		return kp.Name, k, nil, fmt.Sprintf("key provider id %q is not hex", kp.ID)
	}
	return kp.Name, k, id, ""
}

func mrConfigV3ID(document string) []byte {
	h := sha256.New()
	h.Write([]byte("dstack-mr-config-v3:"))
	h.Write([]byte{0})
	h.Write([]byte(document))
	return padConfigID(3, h.Sum(nil))
}

// mrConfigV3 is dstack-types MrConfigV3; unknown fields are refused, as dstack does.
type mrConfigV3 struct {
	Version          *int      `json:"version"`
	AppID            *string   `json:"app_id"`
	ComposeHash      *string   `json:"compose_hash"`
	GPUPolicyHash    *string   `json:"gpu_policy_hash"`
	KeyProvider      *string   `json:"key_provider"`
	KeyProviderID    *string   `json:"key_provider_id"`
	InstanceID       *string   `json:"instance_id"`
	InitScriptHashes *[]string `json:"init_script_hashes"`
}

// checkMRConfigDocument checks that the v3 document's fields agree with what RTMR3 attests,
// as dstack's guest does before trusting it (config_id_verifier.rs): absent optional fields
// pin nothing.
func checkMRConfigDocument(r *Report, document string) {
	var d mrConfigV3
	dec := json.NewDecoder(strings.NewReader(document))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		r.check("mr-config-document", false, "the mr_config document is not dstack's MrConfigV3: %v", err)
		return
	}
	var bad []string
	if d.Version != nil && *d.Version != 3 {
		bad = append(bad, fmt.Sprintf("version %d, not 3", *d.Version))
	}
	a := r.App
	cmp := func(field string, doc *string, attested []byte, required bool) {
		if doc == nil {
			if required {
				bad = append(bad, field+" missing")
			}
			return
		}
		b, err := hex.DecodeString(strings.TrimPrefix(*doc, "0x"))
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s %q is not hex", field, *doc))
		case !bytes.Equal(b, attested):
			bad = append(bad, fmt.Sprintf("%s %x, RTMR3 attests %x", field, b, attested))
		}
	}
	cmp("compose_hash", d.ComposeHash, a.ComposeHash, true)
	cmp("app_id", d.AppID, a.AppID, false)
	cmp("instance_id", d.InstanceID, a.InstanceID, false)
	var gpu []byte
	var scripts []Hex
	if r.RTMR3 != nil {
		gpu, scripts = r.RTMR3.GPUPolicyHash, r.RTMR3.InitScriptHashes
	}
	cmp("gpu_policy_hash", d.GPUPolicyHash, gpu, false)
	name, kind, kpID, why := attestedKeyProvider(r)
	switch {
	case d.KeyProvider == nil:
		bad = append(bad, "key_provider missing")
	case why != "":
		bad = append(bad, "key_provider "+*d.KeyProvider+" cannot be compared: "+why)
	case *d.KeyProvider != kind.name:
		bad = append(bad, fmt.Sprintf("key_provider %s, RTMR3 attests %s", *d.KeyProvider, name))
	default:
		cmp("key_provider_id", d.KeyProviderID, kpID, false)
	}
	if d.InitScriptHashes != nil {
		var got []string
		for _, s := range scripts {
			got = append(got, hex.EncodeToString(s))
		}
		var want []string
		for _, s := range *d.InitScriptHashes {
			want = append(want, strings.ToLower(strings.TrimPrefix(s, "0x")))
		}
		if strings.Join(want, ",") != strings.Join(got, ",") {
			bad = append(bad, fmt.Sprintf("init_script_hashes [%s], RTMR3 attests [%s]", strings.Join(want, ", "), strings.Join(got, ", ")))
		}
	}
	if len(bad) > 0 {
		r.check("mr-config-document", false, "the mr_config document disagrees with RTMR3: %s", strings.Join(bad, "; "))
		return
	}
	r.check("mr-config-document", true, "the mr_config document's compose hash, key provider and the optional pins it sets agree with RTMR3")
}

// describeKeyProvider says which key provider a relying party requires, in the flags' terms.
func describeKeyProvider(name, id string) string {
	var parts []string
	if name != "" {
		parts = append(parts, "key provider "+name)
	}
	if id != "" {
		parts = append(parts, "key provider id "+id)
	}
	return strings.Join(parts, " with ")
}

// describeAttestedKeyProvider says what RTMR3's key-provider event names.
func describeAttestedKeyProvider(kp *eventlog.KeyProvider) string {
	switch {
	case kp == nil:
		return "no key provider (no key-provider event in RTMR3)"
	case kp.ID == "":
		return "key provider " + kp.Name + " (no id)"
	}
	return "key provider " + kp.Name + " with key provider id " + kp.ID
}

package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// MaxPolicyBytes bounds a policy file; real ones are a few KiB.
const MaxPolicyBytes = 16 << 20

// Policy is an allow-list in dstack's auth-simple format (kms/auth-simple, auth-config.json).
// Hex values are kept normalized the way auth-simple compares them: lowercase with 0x.
type Policy struct {
	GatewayAppID string
	// OSImages are the allowed os_image_hash values (osImages).
	OSImages []string
	// AllowedTCBStatuses (allowedTcbStatuses) defaults to ["UpToDate"]; compared exactly.
	AllowedTCBStatuses []string
	// AllowedAdvisoryIDs (allowedAdvisoryIds): every advisory of the platform must be listed.
	AllowedAdvisoryIDs []string
	KMS                KMSRule
	// Apps are the registered apps in file order (auth-simple takes the first whose id matches;
	// two ids naming the same app are refused by ParseAuthSimple).
	Apps []AppRule
	// Informational fields auth-simple reports on GET /, kept as given.
	KMSContractAddr   string
	ChainID           float64
	AppImplementation string
}

// KMSRule is the "kms" object: which KMS CVMs may boot.
type KMSRule struct {
	MRAggregated   []string
	Devices        []string
	AllowAnyDevice bool
}

// AppRule is one entry of "apps".
type AppRule struct {
	AppID          string
	ComposeHashes  []string
	Devices        []string
	AllowAnyDevice bool
}

// ParseAuthSimple reads an auth-simple configuration. It is stricter than auth-simple, which
// falls back to an all-denying configuration on any error and ignores unknown keys: here a
// malformed value, an unknown key (most likely a misspelt one), a value that is not hex where
// hex is compared, or two keys naming the same app is an error naming the field.
func ParseAuthSimple(data []byte) (*Policy, error) {
	if len(data) > MaxPolicyBytes {
		return nil, fmt.Errorf("policy is %d bytes, more than the %d accepted", len(data), MaxPolicyBytes)
	}
	p := &Policy{
		AllowedTCBStatuses: []string{"UpToDate"},
		OSImages:           []string{},
		AllowedAdvisoryIDs: []string{},
		KMS:                KMSRule{MRAggregated: []string{}, Devices: []string{}},
		KMSContractAddr:    "0x0000000000000000000000000000000000000000",
		AppImplementation:  "0x0000000000000000000000000000000000000000",
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	err := object(d, "", func(key, path string) error {
		var err error
		switch key {
		case "gatewayAppId":
			p.GatewayAppID, err = str(d, path)
		case "kmsContractAddr":
			p.KMSContractAddr, err = str(d, path)
		case "appImplementation":
			p.AppImplementation, err = str(d, path)
		case "chainId":
			p.ChainID, err = number(d, path)
		case "osImages":
			p.OSImages, err = hexList(d, path)
		case "allowedTcbStatuses":
			p.AllowedTCBStatuses, err = strList(d, path)
		case "allowedAdvisoryIds":
			p.AllowedAdvisoryIDs, err = strList(d, path)
		case "kms":
			err = object(d, path, func(key, path string) error {
				var err error
				switch key {
				case "mrAggregated":
					p.KMS.MRAggregated, err = hexList(d, path)
				case "devices":
					p.KMS.Devices, err = hexList(d, path)
				case "allowAnyDevice":
					p.KMS.AllowAnyDevice, err = boolean(d, path)
				default:
					return unknown(path, "mrAggregated, devices, allowAnyDevice")
				}
				return err
			})
		case "apps":
			err = objectOf(d, path, true, func(id, path string) error {
				norm, err := hexValue(id, path+" (the app id)")
				if err != nil {
					return err
				}
				for _, a := range p.Apps {
					if a.AppID == norm {
						return fmt.Errorf("%s: names the same app as an earlier key (ids compare case-insensitively, 0x optional)", path)
					}
				}
				a := AppRule{AppID: norm, ComposeHashes: []string{}, Devices: []string{}}
				err = object(d, path, func(key, path string) error {
					var err error
					switch key {
					case "composeHashes":
						a.ComposeHashes, err = hexList(d, path)
					case "devices":
						a.Devices, err = hexList(d, path)
					case "allowAnyDevice":
						a.AllowAnyDevice, err = boolean(d, path)
					default:
						return unknown(path, "composeHashes, devices, allowAnyDevice")
					}
					return err
				})
				p.Apps = append(p.Apps, a)
				return err
			})
		default:
			return unknown(path, "osImages, allowedTcbStatuses, allowedAdvisoryIds, kms, apps, gatewayAppId, kmsContractAddr, chainId, appImplementation")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("policy: data after the top-level object")
	}
	return p, nil
}

// object reads one JSON object, calling field for each key with the decoder positioned at its
// value; a repeated key is an error (JSON.parse would silently keep the last one).
func object(d *json.Decoder, path string, field func(key, path string) error) error {
	return objectOf(d, path, false, field)
}

// objectOf reads an object; isMap names its keys path["key"] (apps' ids) instead of path.key.
func objectOf(d *json.Decoder, path string, isMap bool, field func(key, path string) error) error {
	where := path
	if where == "" {
		where = "policy"
	}
	t, err := d.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", where, syntax(err))
	}
	if t != json.Delim('{') {
		return fmt.Errorf("%s: want an object, got %s", where, describe(t))
	}
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", where, syntax(err))
		}
		key, _ := t.(string)
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if isMap {
			sub = fmt.Sprintf("%s[%q]", path, key)
		}
		if seen[key] {
			return fmt.Errorf("%s: key given twice", sub)
		}
		seen[key] = true
		if err := field(key, sub); err != nil {
			return err
		}
	}
	if _, err := d.Token(); err != nil {
		return fmt.Errorf("%s: %w", where, syntax(err))
	}
	return nil
}

func syntax(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("unexpected end of the policy")
	}
	return err
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		return map[json.Delim]string{'[': "a list", '{': "an object"}[v]
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", t)
}

func unknown(path, known string) error {
	return fmt.Errorf("%s: unknown field (known here: %s)", path, known)
}

// scalar reads one scalar value; a list or object is refused whole.
func scalar(d *json.Decoder, path, want string) (json.Token, error) {
	t, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, syntax(err))
	}
	if _, ok := t.(json.Delim); ok {
		return nil, fmt.Errorf("%s: want %s, got %s", path, want, describe(t))
	}
	return t, nil
}

func str(d *json.Decoder, path string) (string, error) {
	t, err := scalar(d, path, "a string")
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", path, describe(t))
	}
	return s, nil
}

func boolean(d *json.Decoder, path string) (bool, error) {
	t, err := scalar(d, path, "true or false")
	if err != nil {
		return false, err
	}
	b, ok := t.(bool)
	if !ok {
		return false, fmt.Errorf("%s: want true or false, got %s", path, describe(t))
	}
	return b, nil
}

func number(d *json.Decoder, path string) (float64, error) {
	t, err := scalar(d, path, "a number")
	if err != nil {
		return 0, err
	}
	n, ok := t.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: want a number, got %s", path, describe(t))
	}
	f, err := n.Float64()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func strList(d *json.Decoder, path string) ([]string, error) {
	t, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, syntax(err))
	}
	if t != json.Delim('[') {
		return nil, fmt.Errorf("%s: want a list of strings, got %s", path, describe(t))
	}
	out := []string{}
	for d.More() {
		s, err := str(d, fmt.Sprintf("%s[%d]", path, len(out)))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if _, err := d.Token(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, syntax(err))
	}
	return out, nil
}

func hexList(d *json.Decoder, path string) ([]string, error) {
	l, err := strList(d, path)
	if err != nil {
		return nil, err
	}
	for i, s := range l {
		if l[i], err = hexValue(s, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// hexValue checks a hex value (0x optional, any case) and returns it as auth-simple compares it.
func hexValue(s, path string) (string, error) {
	n := NormalizeHex(s)
	digits := n[2:]
	if digits == "" {
		return "", fmt.Errorf("%s: empty hex value", path)
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%s: %q is not hex (a placeholder left in?)", path, s)
		}
	}
	if len(digits)%2 != 0 {
		return "", fmt.Errorf("%s: %q has an odd number of hex digits", path, s)
	}
	return n, nil
}

// NormalizeHex is auth-simple's normalizeHex: lowercase, with a 0x prefix.
func NormalizeHex(s string) string {
	s = strings.ToLower(s)
	if !strings.HasPrefix(s, "0x") {
		s = "0x" + s
	}
	return s
}

// Role is which webhook question is asked: /bootAuth/app or /bootAuth/kms.
type Role string

const (
	RoleApp Role = "app"
	RoleKMS Role = "kms"
)

// ParseRole reads "app" or "kms" ("" is app).
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case "", RoleApp:
		return RoleApp, nil
	case RoleKMS:
		return RoleKMS, nil
	}
	return "", fmt.Errorf("policy role %q: want app or kms", s)
}

// Decision is auth-simple's answer. Reason carries auth-simple's exact text ("" when allowed),
// except that an empty TCB status adds "(TCB status not evaluated)"; Detail says, for people,
// which value was not in which list.
type Decision struct {
	Role         Role   `json:"role"`
	Allowed      bool   `json:"allowed"`
	Reason       string `json:"reason"`
	Detail       string `json:"detail,omitempty"`
	GatewayAppID string `json:"gateway_app_id"`
}

// BootResponse is the webhook's JSON answer, as dstack's KMS reads it.
type BootResponse struct {
	IsAllowed    bool   `json:"isAllowed"`
	Reason       string `json:"reason"`
	GatewayAppID string `json:"gatewayAppId"`
}

// Response is d as the webhook answers it.
func (d Decision) Response() BootResponse {
	return BootResponse{IsAllowed: d.Allowed, Reason: d.Reason, GatewayAppID: d.GatewayAppID}
}

// Decide answers role's question for b.
func (p *Policy) Decide(b BootInfo, role Role) Decision {
	if role == RoleKMS {
		return p.AllowKMS(b)
	}
	return p.AllowApp(b)
}

// AllowApp is /bootAuth/app: may this app CVM boot (and get its keys)?
func (p *Policy) AllowApp(b BootInfo) Decision {
	if d, done := p.common(b, RoleApp); done {
		return d
	}
	appID := NormalizeHex(b.AppID)
	var app *AppRule
	for i := range p.Apps {
		if p.Apps[i].AppID == appID {
			app = &p.Apps[i]
			break
		}
	}
	if app == nil {
		return p.deny(RoleApp, "app not registered", "appId %s is not a key of apps", appID)
	}
	if ch := NormalizeHex(b.ComposeHash); !slices.Contains(app.ComposeHashes, ch) {
		return p.deny(RoleApp, "compose hash not allowed", "composeHash %s is not in apps[%q].composeHashes %s", ch, appID, list(app.ComposeHashes))
	}
	if !app.AllowAnyDevice {
		if dev := NormalizeHex(b.DeviceID); len(app.Devices) > 0 && !slices.Contains(app.Devices, dev) {
			return p.deny(RoleApp, "app is not allowed to boot on this device", "deviceId %s is not in apps[%q].devices %s", dev, appID, list(app.Devices))
		}
	}
	return p.allow(RoleApp)
}

// AllowKMS is /bootAuth/kms: may this KMS CVM boot?
func (p *Policy) AllowKMS(b BootInfo) Decision {
	if d, done := p.common(b, RoleKMS); done {
		return d
	}
	if mr := NormalizeHex(b.MRAggregated); !slices.Contains(p.KMS.MRAggregated, mr) {
		return p.deny(RoleKMS, "aggregated MR not allowed", "mrAggregated %s is not in kms.mrAggregated %s", mr, list(p.KMS.MRAggregated))
	}
	if !p.KMS.AllowAnyDevice {
		if dev := NormalizeHex(b.DeviceID); len(p.KMS.Devices) > 0 && !slices.Contains(p.KMS.Devices, dev) {
			return p.deny(RoleKMS, "KMS is not allowed to boot on this device", "deviceId %s is not in kms.devices %s", dev, list(p.KMS.Devices))
		}
	}
	return p.allow(RoleKMS)
}

// common is auth-simple's checks shared by both questions, in its order: TCB status, advisories,
// OS image.
func (p *Policy) common(b BootInfo, role Role) (Decision, bool) {
	if !slices.Contains(p.AllowedTCBStatuses, b.TCBStatus) {
		if b.TCBStatus == "" {
			return p.deny(role, "TCB status is not allowed (TCB status not evaluated)",
				"no TCB status: Intel's collateral was not evaluated; allowedTcbStatuses %s", quoted(p.AllowedTCBStatuses)), true
		}
		return p.deny(role, "TCB status is not allowed", "tcbStatus %q is not in allowedTcbStatuses %s", b.TCBStatus, quoted(p.AllowedTCBStatuses)), true
	}
	for _, a := range b.AdvisoryIDs {
		if !slices.Contains(p.AllowedAdvisoryIDs, a) {
			return p.deny(role, "advisory ID is not allowed", "advisory %q is not in allowedAdvisoryIds %s", a, quoted(p.AllowedAdvisoryIDs)), true
		}
	}
	if h := NormalizeHex(b.OSImageHash); !slices.Contains(p.OSImages, h) {
		return p.deny(role, "OS image is not allowed", "osImageHash %s is not in osImages %s", h, list(p.OSImages)), true
	}
	return Decision{}, false
}

func (p *Policy) deny(role Role, reason, format string, args ...any) Decision {
	return Decision{Role: role, Reason: reason, Detail: fmt.Sprintf(format, args...), GatewayAppID: p.GatewayAppID}
}

func (p *Policy) allow(role Role) Decision {
	return Decision{Role: role, Allowed: true, GatewayAppID: p.GatewayAppID}
}

func list(l []string) string { return "[" + strings.Join(l, ", ") + "]" }

func quoted(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return list(q)
}

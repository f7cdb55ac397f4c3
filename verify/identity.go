package verify

// The identity rule: which os_image_hash a report holds the CVM to, and what establishes it.
//
// One rule, applied the same way whatever the mode and whichever flags are given:
//   - the CVM's own word first: the os-image-hash event in RTMR3 ("rtmr3");
//   - else what the relying party supplied and proved: the expected image it gave, whose
//     os_image_hash is the SHA-256 of its sha256sum.txt, when the quote matched that image's
//     registers ("image"); or the os_image_hash it pinned (--os-image-hash) when the
//     measurement document whose registers the quote matched is bound to that hash through a
//     sha256sum.txt ("pinned-document");
//   - a hash only the host names (vm_config.os_image_hash) is reported as such
//     (vm_config_os_image_hash) and is never the identity.
// More trusted input can only add proof: pinning the hash a document is bound to turns a
// document-only verification into one with an identity, never into a failure.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/dstack-mr/dstack-mr/quote"
)

// Sources of AppInfo.OSImageHash.
const (
	IdentityRTMR3          = "rtmr3"
	IdentityImage          = "image"
	IdentityPinnedDocument = "pinned-document"
)

// Sources of the lite document (Report.LiteSource).
const (
	LiteFromVMConfig     = "vm_config"
	LiteFromRelyingParty = "relying-party"
)

// attestedOSImageHash is the os_image_hash the CVM logged in RTMR3, if any.
func attestedOSImageHash(r *Report) []byte {
	if r.RTMR3 == nil {
		return nil
	}
	return r.RTMR3.OSImageHash
}

// liteDocument is the document a lite prediction used, as something CheckBinding can tie to an
// os_image_hash: the VM's own, or the relying party's paired with the sha256sum.txt vm_config
// carries (nil when there is none to pair it with).
func liteDocument(opts *Options, vm *VMConfig) *LiteDocument {
	if opts.LiteMeasurement == nil {
		if vm == nil {
			return nil
		}
		return vm.TDXMeasurement
	}
	if vm == nil || vm.TDXMeasurement == nil || len(vm.TDXMeasurement.ChecksumFile) == 0 {
		return nil
	}
	return &LiteDocument{ChecksumFile: vm.TDXMeasurement.ChecksumFile, Measurement: opts.LiteMeasurement}
}

// checkIdentity settles AppInfo.OSImageHash and checks the os_image_hash expectations.
func checkIdentity(r *Report, opts *Options, vm *VMConfig) {
	a := r.App
	if vm != nil {
		a.VMConfigOSImageHash = vm.OSImageHash
	}
	attested := attestedOSImageHash(r)
	pin := opts.Expect.OSImageHash
	matched := registersMatch(r)

	if attested != nil && vm != nil && vm.OSImageHash != nil {
		r.check("os-image-hash-consistency", bytes.Equal(vm.OSImageHash, attested),
			"vm_config names os_image_hash %x, the CVM attested %x in RTMR3 (os-image-hash event)", []byte(vm.OSImageHash), attested)
	}
	bound := checkLiteBinding(r, opts, vm, attested, pin)

	switch {
	case attested != nil:
		a.OSImageHash, a.OSImageHashSource = attested, IdentityRTMR3
	case r.Mode == "full" && opts.ImageOSImageHash != nil && matched:
		a.OSImageHash, a.OSImageHashSource = opts.ImageOSImageHash, IdentityImage
	case r.Mode == "lite" && bound != nil && matched && pin != nil && bytes.Equal(bound, pin):
		a.OSImageHash, a.OSImageHashSource = pin, IdentityPinnedDocument
	}

	if opts.ImageOSImageHash != nil {
		if attested != nil {
			r.check("os-image-hash-image", bytes.Equal(attested, opts.ImageOSImageHash),
				"the CVM attested os_image_hash %x (RTMR3 os-image-hash event), the expected image's is %x", attested, opts.ImageOSImageHash)
		} else {
			r.skip("os-image-hash-image", false, "the CVM attests no os_image_hash (no os-image-hash event in RTMR3)%s; "+
				"the expected image (os_image_hash %x) is checked through its registers alone", hostClaim(vm), opts.ImageOSImageHash)
		}
	}
	if pin == nil {
		return
	}
	if a.OSImageHash != nil {
		r.check("expect-os-image-hash", bytes.Equal(pin, a.OSImageHash), "expected %x, %s %x", pin, identityWording(a.OSImageHashSource), []byte(a.OSImageHash))
		return
	}
	if c := r.findCheck("lite-document-binding"); c != nil && !c.OK {
		return // the binding's own failure says why the pinned hash does not hold
	}
	r.skip("expect-os-image-hash", true, "%s", whyNoIdentity(r, opts, vm, matched))
}

// checkLiteBinding ties the lite document to an os_image_hash where one is there to tie it to,
// and returns the hash it is bound to (nil when it was not bound). The VM's own document must
// be bound to something: to the hash the CVM attested, else the one the relying party pinned,
// else vm_config's, which tells what to pin but proves nothing (os-image-identity stays
// required). The relying party's own document is bound only where an identity rests on it.
func checkLiteBinding(r *Report, opts *Options, vm *VMConfig, attested, pin []byte) []byte {
	if r.Mode != "lite" || r.Lite == nil {
		return nil
	}
	own := opts.LiteMeasurement == nil
	target, what := attested, "the os_image_hash the CVM attested in RTMR3"
	switch {
	case attested != nil:
		if !own {
			return nil // the CVM names its image itself; the document the relying party gave only predicts
		}
	case pin != nil:
		target, what = pin, "the os_image_hash you pinned (--os-image-hash)"
	case own && vm != nil && vm.OSImageHash != nil:
		target, what = vm.OSImageHash, "vm_config's os_image_hash (host-supplied)"
	}
	doc := liteDocument(opts, vm)
	switch {
	case target == nil && own:
		r.skip("os-image-identity", true, "the lite document comes from the VM's own vm_config and nothing names its image: "+
			"give the expected os_image_hash (--os-image-hash) or a measurement.tdx.cbor you trust (--measurement)")
		return nil
	case target == nil:
		return nil
	case doc == nil:
		// Only the relying party's document lands here: vm_config has no sha256sum.txt to pair it with.
		return nil
	}
	err := doc.CheckBinding(target)
	detail := errOr(err, doc.Binding()+", bound to "+what)
	if !own {
		detail = "your measurement document with vm_config's checksum_file: " + detail
	}
	r.check("lite-document-binding", err == nil, "%s", detail)
	if err != nil {
		return nil
	}
	r.App.OSImageHashBinding = doc.Binding()
	if own && pin == nil {
		// The host chose the document; only the relying party's own anchor makes it theirs.
		r.skip("os-image-identity", true, "the lite document comes from the VM's own vm_config and is bound to %s (%x): "+
			"pin that hash with --os-image-hash if it is the image you expect, or give a measurement.tdx.cbor you trust (--measurement)", what, target)
	}
	if own && attested == nil && pin == nil {
		return nil
	}
	return target
}

// hostClaim mentions vm_config's os_image_hash, if any, as what it is.
func hostClaim(vm *VMConfig) string {
	if vm == nil || vm.OSImageHash == nil {
		return ", and there is no vm_config naming one"
	}
	return fmt.Sprintf("; vm_config names %x, which the host supplies and nothing attests", []byte(vm.OSImageHash))
}

func identityWording(source string) string {
	switch source {
	case IdentityRTMR3:
		return "the CVM attested (RTMR3 os-image-hash event)"
	case IdentityImage:
		return "the expected image, whose registers the quote matched, has"
	case IdentityPinnedDocument:
		return "the measurement document the quote matched is bound to"
	}
	return "found"
}

// whyNoIdentity says why a pinned os_image_hash could not be established.
func whyNoIdentity(r *Report, opts *Options, vm *VMConfig, matched bool) string {
	var why []string
	why = append(why, "the CVM attests no os_image_hash (no os-image-hash event in RTMR3)"+hostClaim(vm))
	switch {
	case r.Mode == "none":
		why = append(why, "and no expected image or measurement document was given to tie one to the quote")
	case !matched:
		why = append(why, "and the predicted registers do not match the quote")
	case r.Mode == "full" && opts.ImageOSImageHash == nil:
		why = append(why, "and the expected image has no sha256sum.txt, so its own os_image_hash is unknown")
	case r.Mode == "lite" && opts.LiteMeasurement != nil:
		why = append(why, "and your measurement document cannot be tied to it: vm_config carries no tdx_measurement.checksum_file (the image's sha256sum.txt) to bind it through")
	}
	return strings.Join(why, ", ")
}

func checkExpectations(r *Report, opts *Options, q *quote.Quote) {
	x := opts.Expect
	expect := func(name string, want, got []byte) {
		if want != nil {
			r.check("expect-"+name, bytes.Equal(want, got), "expected %x, attested %x", want, got)
		}
	}
	expect("compose-hash", x.ComposeHash, r.App.ComposeHash)
	expect("app-id", x.AppID, r.App.AppID)
	expect("instance-id", x.InstanceID, r.App.InstanceID)
	if x.KeyProviderName != "" || x.KeyProviderID != "" {
		kp := r.App.KeyProvider
		ok := kp != nil && (x.KeyProviderName == "" || kp.Name == x.KeyProviderName) &&
			(x.KeyProviderID == "" || strings.EqualFold(kp.ID, x.KeyProviderID))
		r.check("expect-key-provider", ok, "expected %s, attested %s", describeKeyProvider(x.KeyProviderName, x.KeyProviderID), describeAttestedKeyProvider(kp))
	}
	checkMRConfigID(r, q)
}

// registersMatch reports whether every predicted register matched the quote.
func registersMatch(r *Report) bool {
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2"} {
		if reg := r.Registers[n]; reg == nil || reg.Match == nil || !*reg.Match {
			return false
		}
	}
	return true
}

func (r *Report) findCheck(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

func sha256Of(b []byte) Hex {
	sum := sha256.Sum256(b)
	return sum[:]
}

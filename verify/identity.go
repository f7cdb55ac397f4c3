package verify

// The identity rule: which os_image_hash a report holds the CVM to, and what carries it.

import (
	"bytes"
	"strings"

	"github.com/dstack-mr/dstack-mr/quote"
)

func checkApp(r *Report, opts *Options, vm *VMConfig, q *quote.Quote) {
	a := r.App
	if vm != nil {
		a.OSImageHash = vm.OSImageHash
	}
	switch {
	case a.RTMR3OSImageHash != nil:
		a.OSImageIdentity, a.OSImageIdentitySource = a.RTMR3OSImageHash, "rtmr3"
		if vm != nil && vm.OSImageHash != nil {
			r.check("os-image-hash-consistency", bytes.Equal(vm.OSImageHash, a.RTMR3OSImageHash),
				"vm_config names os_image_hash %x, the CVM attested %x in RTMR3 (os-image-hash event)", []byte(vm.OSImageHash), []byte(a.RTMR3OSImageHash))
		}
	case r.Mode == "full" && opts.ImageOSImageHash != nil && registersMatch(r):
		a.OSImageIdentity, a.OSImageIdentitySource = opts.ImageOSImageHash, "image"
	case vm != nil && vm.OSImageHash != nil && a.LiteBinding != "" && r.Mode == "lite" && registersMatch(r):
		a.OSImageIdentity, a.OSImageIdentitySource = vm.OSImageHash, "lite-document"
	case vm != nil && vm.OSImageHash != nil:
		a.OSImageIdentity, a.OSImageIdentitySource = vm.OSImageHash, "vm_config"
	}
	if opts.ImageOSImageHash != nil {
		r.check("os-image-hash-image", a.OSImageIdentity != nil && bytes.Equal(a.OSImageIdentity, opts.ImageOSImageHash),
			"the CVM's os_image_hash %x (from %s), expected image's %x", []byte(a.OSImageIdentity), a.OSImageIdentitySource, opts.ImageOSImageHash)
	}
	x := opts.Expect
	expect := func(name string, want, got []byte) {
		if want != nil {
			r.check("expect-"+name, bytes.Equal(want, got), "expected %x, attested %x", want, got)
		}
	}
	expect("compose-hash", x.ComposeHash, r.App.ComposeHash)
	expect("app-id", x.AppID, r.App.AppID)
	expect("instance-id", x.InstanceID, r.App.InstanceID)
	if x.OSImageHash != nil {
		switch a.OSImageIdentitySource {
		case "":
			r.check("expect-os-image-hash", false, "neither RTMR3 nor vm_config carries an os_image_hash")
		case "vm_config":
			r.check("expect-os-image-hash", false, "expected %x; only vm_config names one (%x), which the host supplies and nothing in the quote attests",
				x.OSImageHash, []byte(a.OSImageIdentity))
		default:
			r.check("expect-os-image-hash", bytes.Equal(x.OSImageHash, a.OSImageIdentity), "expected %x, attested %x (from %s)",
				x.OSImageHash, []byte(a.OSImageIdentity), a.OSImageIdentitySource)
		}
	}
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

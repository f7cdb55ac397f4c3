package verify

// The KMS's view of a verified CVM: dstack's BootInfo and, with a policy, auth-simple's answer.

import (
	"encoding/hex"
	"fmt"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/quote"
)

// bootOSImageHash is the os_image_hash dstack's KMS would see: the report's identity
// (identity.go) when one is established, else, as the KMS takes it, vm_config's hash once the
// VM's own lite document is bound to it and the quote matched that document's registers. That
// hash is then what a policy's osImages list pins; vm_config's hash on its own never counts.
func bootOSImageHash(r *Report) []byte {
	a := r.App
	switch {
	case a.OSImageHash != nil:
		return a.OSImageHash
	case r.LiteSource == LiteFromVMConfig && a.OSImageHashBinding != "" && registersMatch(r):
		return a.VMConfigOSImageHash
	}
	return nil
}

// checkBootInfo computes the BootInfo dstack's KMS would send its auth webhook for this CVM
// (the key-release view: all runtime events), and evaluates opts.Policy over it. It runs after
// the verdict: the policy's answer is reported next to it, not folded into it, because whether
// the attestation holds and whether a policy admits it are separate questions (dstack's verifier
// keeps is_valid apart from the policy too).
func checkBootInfo(r *Report, q *quote.Quote, opts *Options, events []eventlog.Event) {
	b, why := bootInfo(r, q, events)
	if b == nil {
		r.skip("boot-info", false, "dstack's KMS values (mrAggregated, mrSystem, deviceId, ...) are not reported: %s", why)
	}
	r.BootInfo = b
	if opts.Policy == nil {
		return
	}
	role := opts.PolicyRole
	if role == "" {
		role = policy.RoleApp
	}
	if b == nil {
		r.skip("policy", false, "the policy (/bootAuth/%s) is not evaluated: %s", role, why)
		return
	}
	d := opts.Policy.Decide(*b, role)
	r.Policy = &d
	if d.Allowed {
		r.check("policy", true, "auth-simple policy allows this CVM (/bootAuth/%s); not part of verified", role)
	} else {
		r.check("policy", false, "auth-simple policy denies this CVM (/bootAuth/%s): %s (%s); not part of verified", role, d.Reason, d.Detail)
	}
}

// bootInfo is the BootInfo when every value in it is attested, else nil and why not.
func bootInfo(r *Report, q *quote.Quote, events []eventlog.Event) (*policy.BootInfo, string) {
	v := r.QuoteVerification
	switch {
	case v == nil:
		return nil, "no quote"
	case !v.Authentic:
		return nil, "the quote is not authentic"
	case events == nil:
		return nil, "no event log: the app identity and RTMR3′ come from its runtime events"
	case !checkPassed(r, "rtmr3-replay"):
		return nil, "the event log does not replay to the quote's RTMR3"
	case v.PPID == "":
		return nil, "the PCK certificate's PPID could not be read: deviceId is its SHA-256"
	case bootOSImageHash(r) == nil && r.App.VMConfigOSImageHash == nil:
		return nil, "no attested os_image_hash: the CVM logs no os-image-hash event, no vm_config names one and no expected image was given"
	case bootOSImageHash(r) == nil:
		return nil, "no attested os_image_hash: only vm_config (the host's word) names one; the CVM logs no os-image-hash event and " +
			"its registers match no expected image or lite document (give the image or its measurement.tdx.cbor)"
	}
	ppid, err := hex.DecodeString(v.PPID)
	if err != nil {
		return nil, fmt.Sprintf("PPID %q is not hex", v.PPID)
	}
	tcb := ""
	if v.TCBStatus != nil {
		tcb = *v.TCBStatus
	}
	b, err := policy.Compute(policy.Inputs{
		MRTD: q.Report.MRTD, RTMR: [4][]byte{q.Report.RTMR[0], q.Report.RTMR[1], q.Report.RTMR[2], q.Report.RTMR[3]},
		MRConfigID: q.Report.MRConfigID, MROwner: q.Report.MROwner, MROwnerConfig: q.Report.MROwnerConfig,
		Events: events, PPID: ppid, OSImageHash: bootOSImageHash(r), TCBStatus: tcb, AdvisoryIDs: v.AdvisoryIDs,
	})
	if err != nil {
		return nil, err.Error()
	}
	return b, ""
}

// checkPassed reports whether the named check ran and passed.
func checkPassed(r *Report, name string) bool {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

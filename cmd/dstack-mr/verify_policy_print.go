package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/verify"
)

// policyFlags are verify's flags for dstack's KMS auth policy.
func policyFlags(cat string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "policy", Category: cat, Usage: "dstack auth-simple policy (auth-config.json): report whether dstack's KMS would release keys to this CVM; exit 3 when it would not"},
		&cli.StringFlag{Name: "policy-role", Category: cat, Value: "app", Usage: "which question --policy answers: app (/bootAuth/app) or kms (/bootAuth/kms, the CVM is a KMS)"},
	}
}

// loadPolicy reads --policy and --policy-role into opts. A file that cannot be read or parsed is
// a usage error naming the file and the field.
func loadPolicy(c *cli.Context, opts *verify.Options) error {
	role, err := policy.ParseRole(c.String("policy-role"))
	if err != nil {
		return usageError(c, fmt.Errorf("--policy-role: %w", err), false)
	}
	path := c.String("policy")
	if path == "" {
		if c.IsSet("policy-role") {
			return usageError(c, errors.New("--policy-role needs --policy"), false)
		}
		return nil
	}
	data, err := readPolicyFile(path)
	if err != nil {
		return usageError(c, fmt.Errorf("--policy %s: %w", path, err), false)
	}
	p, err := policy.ParseAuthSimple(data)
	if err != nil {
		return usageError(c, fmt.Errorf("--policy %s: %w", path, err), false)
	}
	opts.Policy, opts.PolicyRole = p, role
	return nil
}

func readPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, policy.MaxPolicyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > policy.MaxPolicyBytes {
		return nil, fmt.Errorf("larger than %d bytes", policy.MaxPolicyBytes)
	}
	return data, nil
}

// printPolicy prints the KMS's view of the CVM (its BootInfo values) and, with --policy, the
// policy's answer.
func printPolicy(w io.Writer, r *verify.Report) {
	if b := r.BootInfo; b != nil {
		fmt.Fprintln(w, "  dstack KMS values (boot_info):")
		for _, f := range []struct{ name, v string }{{"mrAggregated", b.MRAggregated}, {"mrSystem", b.MRSystem}, {"deviceId", b.DeviceID}} {
			fmt.Fprintf(w, "    %-14s %s\n", f.name, f.v)
		}
		tcb := b.TCBStatus
		if tcb == "" {
			tcb = "not evaluated (no --collateral)"
		}
		fmt.Fprintf(w, "    %-14s %s\n", "tcbStatus", tcb)
	}
	if d := r.Policy; d != nil {
		if d.Allowed {
			fmt.Fprintf(w, "policy: ALLOWED (/bootAuth/%s)\n", d.Role)
		} else {
			fmt.Fprintf(w, "policy: DENIED (/bootAuth/%s): %s; %s\n", d.Role, d.Reason, d.Detail)
		}
		return
	}
	for _, n := range r.NotChecked {
		if n.Name == "policy" {
			fmt.Fprintf(w, "policy: NOT EVALUATED: %s\n", n.Reason)
		}
	}
}

// policyVerdict is verify's exit when a policy was given: the attestation may hold and the
// policy still refuse it (or be unanswerable), and then the KMS would not release keys.
func policyVerdict(opts *verify.Options, r *verify.Report) error {
	switch {
	case opts.Policy == nil:
		return nil
	case r.Policy == nil:
		return &exitError{code: exitNotVerified, err: errors.New("attestation verified, but the policy could not be evaluated (see policy above)")}
	case !r.Policy.Allowed:
		return &exitError{code: exitNotVerified, err: fmt.Errorf("attestation verified, but the policy denies it: %s", r.Policy.Reason)}
	}
	return nil
}

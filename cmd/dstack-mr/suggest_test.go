package main

import (
	"strings"
	"testing"
)

// A mistyped command, flag or enumerated value is a usage error (exit 1, nothing on stdout)
// that names the nearest valid choice.
func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mesure"}, `unknown command "mesure" (did you mean 'measure'?)`},
		{[]string{"verfy"}, `did you mean 'verify'?`},
		{[]string{"image", "inspct", "x"}, `unknown command "inspct" (did you mean 'inspect'?)`},
		{[]string{"quote", "verfy", "x"}, `did you mean 'verify'?`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"; commands: measure, acpi`},
		{[]string{"measure", "--cpuu", "2"}, `did you mean --cpu?`},
		{[]string{"verify", "--atestation", "x"}, `did you mean --attestation?`},
		{[]string{"measure", "../../testdata/sample-image", "--host-share-mode", "9pp"}, `want 9p or vvfat (did you mean 9p?)`},
		{[]string{"measure", "../../testdata/sample-image", "--qemu-build", "dstack-frok"}, `(did you mean dstack-fork?)`},
		{[]string{"--log-level", "debg", "acpi"}, `want debug, info, warning or error (did you mean debug?)`},
		{[]string{"quote", "verify", "--tcb-policy", "UpToDat,OutOfDate", "x"}, `(did you mean UpToDate?)`},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
}

func TestNearest(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		choices  []string
	}{
		{"mesure", "measure", []string{"measure", "acpi", "verify"}},
		{"x", "", []string{"measure", "acpi"}},
		{"VVFAT", "vvfat", []string{"9p", "vvfat"}},
		{"completely-different", "", []string{"upstream", "dstack-fork"}},
	} {
		if got := nearest(tc.in, tc.choices); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

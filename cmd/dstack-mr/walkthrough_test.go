package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// The README's auditor walkthrough runs as written: every dstack-mr line of its block, with
// ../shared the shared reference data, exits as its "# exit N" comment says, prints its
// report on stdout and no Go internals anywhere.
func TestREADMEWalkthrough(t *testing.T) {
	shared, ok := testvectors.SharedDir()
	if !ok {
		t.Skip("shared reference data not found: the walkthrough reads ../shared")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(readme), "<!-- walkthrough:")
	if !found {
		t.Fatal("README has no walkthrough block")
	}
	block, _, _ = strings.Cut(block, "\n```\n")
	exitComment := regexp.MustCompile(`\s+# exit (\d+)$`)
	n := 0
	for _, line := range strings.Split(block, "\n") {
		if !strings.HasPrefix(line, "dstack-mr ") {
			continue
		}
		m := exitComment.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("no '# exit N' on %q", line)
			continue
		}
		want, _ := strconv.Atoi(m[1])
		args := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(line, "dstack-mr "), m[0]))
		for i, a := range args {
			args[i] = strings.Replace(a, "../shared/", shared+"/", 1)
		}
		n++
		code, stdout, stderr := runCLI(args...)
		if code != want || stdout == "" {
			t.Errorf("%s: exit %d (README says %d), stderr %s", line, code, want, stderr)
		}
		for _, bad := range []string{"&{", "Go value", "unmarshal"} {
			if strings.Contains(stdout+stderr, bad) {
				t.Errorf("%s: output shows Go internals (%q)", line, bad)
			}
		}
	}
	if n < 4 {
		t.Errorf("%d walkthrough commands, want at least 4", n)
	}
}

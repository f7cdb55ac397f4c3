package testvectors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SharedEnv overrides where tests look for the shared reference data (other projects' data:
// real attestations, DCAP quotes and collateral, QEMU's own test tables), which is never
// committed here. By default it is the "shared" directory beside the repository.
const SharedEnv = "DSTACK_MR_SHARED"

// SharedDir returns the shared reference directory and whether it exists.
func SharedDir() (string, bool) {
	dir := os.Getenv(SharedEnv)
	if dir == "" {
		root, ok := repoRoot()
		if !ok {
			return "", false
		}
		dir = filepath.Join(root, "..", "shared")
	}
	st, err := os.Stat(dir)
	return dir, err == nil && st.IsDir()
}

// Shared returns the path of rel (slash-separated) inside the shared reference directory, or
// skips the test when that file is not there: a fresh clone has no ../shared, CI does.
func Shared(tb testing.TB, rel string) string {
	tb.Helper()
	dir, ok := SharedDir()
	if !ok {
		tb.Skipf("shared reference data not found (../shared beside the repository, or $%s): skipping the check that needs %s", SharedEnv, rel)
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("shared reference file %s is absent (%v): skipping", rel, err)
	}
	return p
}

// ReadShared reads rel from the shared reference directory, skipping the test when it is absent.
func ReadShared(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Shared(tb, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// repoRoot walks up from the working directory (a package directory under go test) to the
// directory holding go.mod.
func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// DstackVerifier returns the shared path of one of upstream dstack's real attestations by its
// upstream file name: "quote-report.json" (full event log, 16 vCPUs, 1 GPU, QEMU 9.2.1),
// "tdx-lite-getquote.json" (a lite CVM, dstack 0.6.0 image) and "ra-tls-tdx_quote.bin" (a
// binary v4 quote).
func DstackVerifier(name string) string {
	if !strings.HasSuffix(name, ".bin") {
		name = "dstack-verifier-" + name
	}
	return "real-attestations/dstack-verifier/" + name
}

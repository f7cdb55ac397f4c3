package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadSetup: serve checks every flag and file before listening; each mistake
// exits 1 naming the flag, with nothing on stdout.
func TestServeRefusesBadSetup(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--images", missing}, "--images"},
		{[]string{"serve", "--collateral-dir", missing}, "--collateral-dir"},
		{[]string{"serve", "--policy", missing}, "--policy"},
		{[]string{"serve", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key"},
		{[]string{"serve", "--max-body", "0"}, "--max-body"},
		{[]string{"serve", "--max-concurrent", "0"}, "--max-concurrent"},
		{[]string{"serve", "--tcb-policy", "UpToDat"}, "--tcb-policy"},
		{[]string{"serve", "--time", "yesterday"}, "--time"},
		{[]string{"serve", "extra"}, "no arguments"},
		{[]string{"serve", "--listen", "256.0.0.1:1"}, "--listen"},
		{[]string{"serve", "--image-url", "https://x/{OS_IMAGE_HASH}"}, "--image-url needs --images"},
		{[]string{"serve", "--images", t.TempDir(), "--image-url", "https://x/latest.tar.gz"}, "--image-url"},
		{[]string{"serve", "--images", t.TempDir(), "--image-url", "ftp://x/{OS_IMAGE_HASH}"}, "--image-url"},
		{[]string{"serve", "--images", t.TempDir(), "--image-url", "https://x/{OS_IMAGE_HASH}", "--image-max-bytes", "0"}, "--image-max-bytes"},
	} {
		code, stdout, stderr := runCLI(c.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 naming %s", c.args, code, stdout, stderr, c.want)
		}
	}
}

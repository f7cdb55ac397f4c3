package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRelease packs the sample image into a dstack-style release tarball with
// sha256sum.txt and digest.txt, and returns its path and the expected os_image_hash.
func writeRelease(t *testing.T, dir string) (string, string) {
	t.Helper()
	var meta map[string]any
	raw, err := os.ReadFile(filepath.Join(sampleDir, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"metadata.json": raw}
	var sums strings.Builder
	for _, key := range []string{"bios", "kernel", "initrd"} {
		name := meta[key].(string)
		b, err := os.ReadFile(filepath.Join(sampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
		h := sha256.Sum256(b)
		sums.WriteString(hex.EncodeToString(h[:]) + "  " + name + "\n")
	}
	mh := sha256.Sum256(raw)
	sums.WriteString(hex.EncodeToString(mh[:]) + "  metadata.json\n")
	files["sha256sum.txt"] = []byte(sums.String())
	digest := sha256.Sum256(files["sha256sum.txt"])
	files["digest.txt"] = []byte(hex.EncodeToString(digest[:]))

	path := filepath.Join(dir, "dstack-0.0.0.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "dstack-0.0.0/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, name := range []string{"digest.txt", "sha256sum.txt", meta["kernel"].(string), "metadata.json", meta["bios"].(string), meta["initrd"].(string)} {
		b := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: "dstack-0.0.0/" + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	f.Close()
	return path, hex.EncodeToString(digest[:])
}

// TestMeasureSameForTarballDirectoryAndRaw: the three ways of naming an image agree, and a
// tarball with checksums reports its os_image_hash.
func TestMeasureSameForTarballDirectoryAndRaw(t *testing.T) {
	tarball, osImageHash := writeRelease(t, t.TempDir())
	var meta map[string]string
	raw, _ := os.ReadFile(filepath.Join(sampleDir, "metadata.json"))
	json.Unmarshal(raw, &meta)
	shape := []string{"--cpu", "2", "--memory", "4G", "--json"}
	rawArgs := append([]string{"measure", "--firmware", filepath.Join(sampleDir, meta["bios"]),
		"--kernel", filepath.Join(sampleDir, meta["kernel"]), "--initrd", filepath.Join(sampleDir, meta["initrd"]),
		"--cmdline", meta["cmdline"]}, shape...)
	var results []measureResult
	for _, args := range [][]string{
		append([]string{"measure", sampleDir}, shape...),
		append([]string{"measure", filepath.Join(sampleDir, "metadata.json")}, shape...),
		append([]string{"measure", tarball}, shape...),
		rawArgs,
	} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var r measureResult
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	for i, r := range results[1:] {
		if r.MRTD != results[0].MRTD || r.RTMR0 != results[0].RTMR0 || r.RTMR1 != results[0].RTMR1 || r.RTMR2 != results[0].RTMR2 {
			t.Errorf("input form %d measures differently from the directory", i+1)
		}
	}
	if results[2].OSImageHash != osImageHash {
		t.Errorf("tarball os_image_hash = %q, want %q", results[2].OSImageHash, osImageHash)
	}
}

func TestMeasureRejectsTamperedTarball(t *testing.T) {
	dir := t.TempDir()
	tarball, _ := writeRelease(t, dir)
	// Rewrite the archive with one byte of the kernel flipped but the old checksums.
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := gzip.NewReader(strings.NewReader(string(data)))
	tr := tar.NewReader(zr)
	out, _ := os.Create(filepath.Join(dir, "tampered.tar.gz"))
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "bzImage-6.1.0-56-amd64") {
			b[len(b)/2] ^= 1
		}
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	out.Close()
	code, stdout, stderr := runCLI("measure", filepath.Join(dir, "tampered.tar.gz"))
	if code == 0 || stdout != "" {
		t.Fatalf("tampered release accepted: exit %d, stdout %q", code, stdout)
	}
	if !strings.Contains(stderr, "bzImage") {
		t.Errorf("error does not name the tampered file: %s", stderr)
	}
	// Overriding verification measures anyway, loudly.
	code, _, stderr = runCLI("measure", "--no-verify-checksums", filepath.Join(dir, "tampered.tar.gz"))
	if code != 0 || !strings.Contains(stderr, "NOT checked") {
		t.Errorf("--no-verify-checksums: exit %d, stderr %q", code, stderr)
	}
}

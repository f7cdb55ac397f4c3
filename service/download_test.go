package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/verify"
)

// releaseTarball packs files (name -> content) as a release tarball, writing sha256sum.txt and
// digest.txt over them as a release does; it returns the tarball and its os_image_hash.
func releaseTarball(t testing.TB, files map[string][]byte, extra map[string][]byte) ([]byte, string) {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var sums bytes.Buffer
	for _, n := range names {
		s := sha256.Sum256(files[n])
		fmt.Fprintf(&sums, "%x  %s\n", s, n)
	}
	all := map[string][]byte{"sha256sum.txt": sums.Bytes()}
	h := sha256.Sum256(sums.Bytes())
	hash := hex.EncodeToString(h[:])
	all["digest.txt"] = []byte(hash + "\n")
	for n, b := range files {
		all[n] = b
	}
	for n, b := range extra {
		all[n] = b
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	order := make([]string, 0, len(all))
	for n := range all {
		order = append(order, n)
	}
	sort.Strings(order)
	for _, n := range order {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(all[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(all[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), hash
}

// sampleFiles are the bundled sample image's measured files.
func sampleFiles(t testing.TB) map[string][]byte {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "testdata", "sample-image")
	out := map[string][]byte{}
	for _, n := range []string{"metadata.json", "ovmf-debian-2025.02-8+deb13u1.fd", "bzImage-6.1.0-56-amd64", "initrd-small.cpio.gz"} {
		out[n] = readFile(t, filepath.Join(dir, n))
	}
	return out
}

// imageServer serves tarballs by the path's hash; serve decides each answer. hits counts
// requests.
type imageServer struct {
	*httptest.Server
	hits atomic.Int32
}

func newImageServer(t testing.TB, serve func(w http.ResponseWriter, r *http.Request, hash string)) *imageServer {
	s := &imageServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		hash := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/mr_"), ".tar.gz")
		serve(w, r, hash)
	}))
	t.Cleanup(s.Close)
	return s
}

func downloadStore(t testing.TB, srv *imageServer, d Downloader) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := OpenStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	d.URLTemplate = srv.URL + "/mr_" + HashPlaceholder + ".tar.gz"
	if err := st.SetDownloader(&d); err != nil {
		t.Fatal(err)
	}
	return st, dir
}

// storedFiles lists what the store directory holds.
func storedFiles(t testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestDownloadOnce: fifty simultaneous first requests for one image download it once; it is
// stored under its hash, nothing else is left behind, and it loads.
func TestDownloadOnce(t *testing.T) {
	tarball, hash := releaseTarball(t, sampleFiles(t), nil)
	release := make(chan struct{})
	srv := newImageServer(t, func(w http.ResponseWriter, r *http.Request, h string) {
		<-release // every request has asked by now
		if h != hash {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(tarball)
	})
	st, dir := downloadStore(t, srv, Downloader{})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var started atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			e, _, err := st.fetch(hash)
			if err == nil && e.OSImageHash != hash {
				err = fmt.Errorf("entry %s", e.OSImageHash)
			}
			errs <- err
		}()
	}
	waitFor(t, "every request to ask", func() bool { return started.Load() == n })
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("%d downloads for %d simultaneous requests, want 1", got, n)
	}
	if files := storedFiles(t, dir); len(files) != 1 || files[0] != "mr_"+hash+".tar.gz" {
		t.Fatalf("store holds %v", files)
	}
	li, _, err := st.load(hash)
	if err != nil || li.prepared == nil {
		t.Fatalf("the downloaded image does not load: %v", err)
	}
	// A restarted store indexes it by its name.
	st2, err := OpenStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st2.Lookup(hash); !ok {
		t.Fatal("a restarted store does not hold the downloaded image")
	}
}

// TestDownloadFaults: an image server answering 404 or 500, stalling, serving a tarball whose
// sha256sum.txt is another image's, a decompression bomb, or an oversized tarball: nothing is
// stored, the error says why, and the hash is not fetched again for every request.
func TestDownloadFaults(t *testing.T) {
	files := sampleFiles(t)
	good, hash := releaseTarball(t, files, nil)
	other := map[string][]byte{}
	for n, b := range files {
		other[n] = b
	}
	other["metadata.json"] = append(append([]byte{}, files["metadata.json"]...), ' ')
	otherTar, otherHash := releaseTarball(t, other, nil)
	bombFiles := map[string][]byte{"rootfs.img": make([]byte, 48<<20)}
	for n, b := range files {
		bombFiles[n] = b
	}
	bomb, bombHash := releaseTarball(t, bombFiles, nil)
	if len(bomb) > len(good)+1<<20 {
		t.Fatalf("the bomb's 48 MiB take %d bytes compressed", len(bomb)-len(good))
	}
	for _, c := range []struct {
		name  string
		hash  string
		serve func(w http.ResponseWriter, r *http.Request)
		d     Downloader
		want  string
	}{
		{"404", hash, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, Downloader{}, "HTTP 404"},
		{"500", hash, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, Downloader{}, "HTTP 500"},
		{"stall", hash, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(good)))
			_, _ = w.Write(good[:100])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, Downloader{Timeout: 300 * time.Millisecond}, "deadline exceeded"},
		{"another image's tarball", hash, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(otherTar) }, Downloader{}, "hashes to " + otherHash},
		{"decompression bomb", bombHash, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bomb) }, Downloader{MaxUnpackedBytes: 16 << 20}, "limit"},
		{"oversized", hash, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(good) }, Downloader{MaxBytes: 1 << 20}, "limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newImageServer(t, func(w http.ResponseWriter, r *http.Request, _ string) { c.serve(w, r) })
			st, dir := downloadStore(t, srv, c.d)
			start := time.Now()
			_, _, err := st.fetch(c.hash)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
			if time.Since(start) > 4*time.Second {
				t.Fatalf("the failure took %s", time.Since(start))
			}
			if files := storedFiles(t, dir); len(files) != 0 {
				t.Fatalf("a failed download left %v", files)
			}
			if _, ok := st.Lookup(c.hash); ok {
				t.Fatal("a failed download is in the store")
			}
			hits := srv.hits.Load()
			if _, _, err := st.fetch(c.hash); err == nil || !strings.Contains(err.Error(), "not fetched again yet") {
				t.Fatalf("second request: %v", err)
			}
			if srv.hits.Load() != hits {
				t.Fatal("a recent failure was fetched again")
			}
		})
	}
}

// TestDownloadOverHTTP: a /verify request whose image is not stored fetches it (with
// --image-url) and is verified in full mode against it; the metrics count the download.
func TestDownloadOverHTTP(t *testing.T) {
	tarball, hash := releaseTarball(t, sampleFiles(t), nil)
	srv := newImageServer(t, func(w http.ResponseWriter, r *http.Request, h string) {
		if h != hash {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(tarball)
	})
	st, _ := downloadStore(t, srv, Downloader{})
	// No public attestation comes from the sample image: the lookup is redirected to it, so a
	// real quote is predicted in full mode from the downloaded image (and does not match it).
	redirect := func(o *verifyOptions) {
		resolve := o.ResolveImage
		o.ResolveImage = func(_ []byte, o *verifyOptions) error {
			h, _ := hex.DecodeString(hash)
			return resolve(h, o)
		}
	}
	_, ts := newTestServer(t, Config{Images: st, verifyHook: redirect})
	body := readSharedAttestation(t, "phala-trust-center/debug-data.set1.app.getquote.json")
	r := verifyAt(t, ts.Client(), ts.URL, body)
	if r.IsValid || !r.Details.ACPITablesVerified || r.Details.OSImageVersion == nil {
		t.Fatalf("full mode did not run on the downloaded image: %s", deref(r.Reason))
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("%d downloads", srv.hits.Load())
	}
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(buf.String(), `dstack_mr_image_store_lookups_total{result="download"} 1`) {
		t.Error("/metrics does not count the download")
	}
}

func TestURLTemplate(t *testing.T) {
	for _, c := range []struct {
		t  string
		ok bool
	}{
		{"https://download.dstack.org/os-images/mr_{OS_IMAGE_HASH}.tar.gz", true},
		{"http://127.0.0.1:8081/{OS_IMAGE_HASH}", true},
		{"https://download.dstack.org/os-images/latest.tar.gz", false},
		{"file:///images/{OS_IMAGE_HASH}.tar.gz", false},
		{"{OS_IMAGE_HASH}", false},
	} {
		if err := CheckURLTemplate(c.t); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.t, err)
		}
	}
}

type verifyOptions = verify.Options

func readSharedAttestation(t testing.TB, rel string) []byte {
	return testvectors.ReadShared(t, "real-attestations/"+rel)
}

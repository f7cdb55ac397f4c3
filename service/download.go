package service

// Fetching an image the store lacks (--image-url): once per hash however many requests wait,
// streamed with a size cap and a timeout, checked before it is stored (its sha256sum.txt must
// hash to the requested os_image_hash and every measured file must match), renamed into the
// store only then; a failure stores nothing and is not retried for every request.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dstack-mr/dstack-mr/images"
)

// HashPlaceholder is what an image URL template names the os_image_hash with (dstack's
// image_download_url uses it too).
const HashPlaceholder = "{OS_IMAGE_HASH}"

// Download defaults.
const (
	DefaultDownloadTimeout   = 5 * time.Minute
	DefaultDownloadMaxBytes  = 4 << 30
	DefaultUnpackedMaxBytes  = 16 << 30
	DefaultNegativeCacheTime = time.Minute
)

// Downloader fetches release tarballs by os_image_hash.
type Downloader struct {
	// URLTemplate is an http(s) URL containing HashPlaceholder, e.g. dstack's
	// https://download.dstack.org/os-images/mr_{OS_IMAGE_HASH}.tar.gz.
	URLTemplate string
	// Timeout bounds one whole download (connection, headers and body).
	Timeout time.Duration
	// MaxBytes bounds the tarball as downloaded; MaxUnpackedBytes its decompressed content
	// (a decompression bomb is refused when it crosses it).
	MaxBytes, MaxUnpackedBytes int64
	// NegativeCache is how long a failed hash is answered with its failure, not fetched again.
	NegativeCache time.Duration
	// Client is the HTTP client (nil: a client with Timeout).
	Client *http.Client
}

// CheckURLTemplate refuses a template that is not an http(s) URL naming the hash.
func CheckURLTemplate(t string) error {
	if !strings.Contains(t, HashPlaceholder) {
		return fmt.Errorf("%q does not contain %s", t, HashPlaceholder)
	}
	u, err := url.Parse(strings.ReplaceAll(t, HashPlaceholder, strings.Repeat("00", 32)))
	if err != nil {
		return fmt.Errorf("%q: %w", t, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", t)
	}
	return nil
}

// dlCall is one download in progress; done is closed when entry or err is set.
type dlCall struct {
	done  chan struct{}
	entry StoreEntry
	err   error
}

type dlFailure struct {
	at  time.Time
	err error
}

// SetDownloader lets the store fetch the images it lacks into its directory, which must then be
// writable.
func (s *Store) SetDownloader(d *Downloader) error {
	if err := CheckURLTemplate(d.URLTemplate); err != nil {
		return fmt.Errorf("--image-url: %w", err)
	}
	f, err := os.CreateTemp(s.dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("--image-url needs a writable --images directory: %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	if d.Timeout <= 0 {
		d.Timeout = DefaultDownloadTimeout
	}
	if d.MaxBytes <= 0 {
		d.MaxBytes = DefaultDownloadMaxBytes
	}
	if d.MaxUnpackedBytes <= 0 {
		d.MaxUnpackedBytes = DefaultUnpackedMaxBytes
	}
	if d.NegativeCache <= 0 {
		d.NegativeCache = DefaultNegativeCacheTime
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: d.Timeout}
	}
	s.mu.Lock()
	s.dl, s.inflight, s.failed = d, map[string]*dlCall{}, map[string]dlFailure{}
	s.mu.Unlock()
	return nil
}

// errRecentFailure marks a hash whose download failed within the negative-cache time.
var errRecentFailure = errors.New("not fetched again yet")

// fetch returns the entry of hash, downloading it when the store lacks it and has a
// downloader. downloaded reports whether this call's request started the download.
func (s *Store) fetch(hash string) (e StoreEntry, downloaded bool, err error) {
	s.mu.Lock()
	if e, ok := s.entries[hash]; ok {
		s.mu.Unlock()
		return e, false, nil
	}
	if s.dl == nil {
		s.mu.Unlock()
		return StoreEntry{}, false, errNotStored
	}
	if f, ok := s.failed[hash]; ok && time.Since(f.at) < s.dl.NegativeCache {
		s.mu.Unlock()
		return StoreEntry{}, false, fmt.Errorf("%w (%v; %s, retried after %s)", f.err, errRecentFailure, f.at.UTC().Format(time.RFC3339), s.dl.NegativeCache)
	}
	if c, ok := s.inflight[hash]; ok {
		s.mu.Unlock()
		<-c.done
		return c.entry, false, c.err
	}
	c := &dlCall{done: make(chan struct{})}
	s.inflight[hash] = c
	d := s.dl
	s.mu.Unlock()

	c.entry, c.err = s.download(d, hash)
	s.mu.Lock()
	delete(s.inflight, hash)
	if c.err != nil {
		s.failed[hash] = dlFailure{at: time.Now(), err: c.err}
	} else {
		delete(s.failed, hash)
		s.entries[hash] = c.entry
	}
	s.mu.Unlock()
	close(c.done)
	return c.entry, true, c.err
}

// download streams the tarball of hash to a temporary file of the store, checks it, and renames
// it to mr_<hash>.tar.gz.
func (s *Store) download(d *Downloader, hash string) (StoreEntry, error) {
	u := strings.ReplaceAll(d.URLTemplate, HashPlaceholder, hash)
	fail := func(format string, args ...any) (StoreEntry, error) {
		return StoreEntry{}, fmt.Errorf("downloading os_image_hash %s from %s: %s", hash, u, fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail("%v", err)
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("HTTP %d", resp.StatusCode)
	}
	if resp.ContentLength > d.MaxBytes {
		return fail("%d bytes, over the %d-byte limit", resp.ContentLength, d.MaxBytes)
	}
	tmp, err := os.CreateTemp(s.dir, ".download-"+hash+"-*")
	if err != nil {
		return fail("%v", err)
	}
	stored := false
	defer func() {
		tmp.Close()
		if !stored {
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, io.LimitReader(resp.Body, d.MaxBytes+1))
	if err != nil {
		return fail("%v", err)
	}
	if n > d.MaxBytes {
		return fail("over the %d-byte limit", d.MaxBytes)
	}
	if err := tmp.Close(); err != nil {
		return fail("%v", err)
	}
	img, err := images.Open(tmp.Name(), images.Options{VerifyChecksums: true, RequireChecksums: true,
		MaxTotalBytes: d.MaxUnpackedBytes, MaxMemberBytes: d.MaxUnpackedBytes})
	if err != nil {
		return fail("not a usable release: %v", err)
	}
	if img.OSImageHash != hash {
		return fail("its sha256sum.txt hashes to %s, not to the requested os_image_hash: not stored", img.OSImageHash)
	}
	final := filepath.Join(s.dir, "mr_"+hash+".tar.gz")
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fail("%v", err)
	}
	stored = true
	return StoreEntry{OSImageHash: hash, Path: final, Kind: KindImage}, nil
}

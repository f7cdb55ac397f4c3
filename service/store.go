package service

// The image store: expected OS images on local disk, named by their os_image_hash, each opened,
// checked and prepared at most once while it stays in a bounded in-memory cache.

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/verify"
)

// Store entry kinds.
const (
	// KindImage is a whole image (a directory with metadata.json, or a release tarball): full
	// mode, every register predicted from the boot files.
	KindImage = "image"
	// KindLiteDir is a directory holding sha256sum.txt and the measurement.tdx.cbor it lists,
	// without boot files: lite mode with the relying party's document, bound to the hash.
	KindLiteDir = "lite-document"
	// KindDocument is a measurement document file named *.cbor, keyed by its own SHA-256 (the
	// binding of dstack's first tdx_measurement schema): it says the hash is expected; the CVM's
	// own document must then be that file, byte for byte, for verify to bind it.
	KindDocument = "document"
)

// StoreEntry is one expected image of the store.
type StoreEntry struct {
	OSImageHash string `json:"os_image_hash"`
	Path        string `json:"path"`
	Kind        string `json:"kind"`
}

// Store is a read-only, content-addressed set of expected images. Safe for concurrent use;
// replicas may share its directory read-only.
type Store struct {
	dir     string
	entries map[string]StoreEntry

	maxCached int
	mu        sync.Mutex               // guards entries (which downloads add to) and the rest
	loaded    map[string]*list.Element // hash -> element of lru holding *loadedImage
	lru       *list.List

	dl       *Downloader
	inflight map[string]*dlCall
	failed   map[string]dlFailure
}

// loadedImage is a store entry after its files were read and checked; ready is closed once
// the load finished (err or the rest set), so concurrent first requests wait for one load.
type loadedImage struct {
	hash  string
	ready chan struct{}
	err   error

	inputs   mr.Inputs
	prepared *mr.Image
	name     verify.ExpectedImage
	isDev    *bool
	lite     []byte
}

var hashName = regexp.MustCompile(`^(?:mr_)?([0-9a-f]{64})\.(?:tar\.gz|tgz|tar\.zst|tar)$`)

// OpenStore indexes dir: every image directory (with sha256sum.txt), release tarball and
// measurement document directly inside it. A tarball named [mr_]<os_image_hash>.tar.gz (as
// dstack publishes them) is indexed by its name and checked when first used; any other
// tarball is read once now to learn its hash. Two entries with one hash, or an entry that
// cannot be indexed, are errors naming the path. maxCached bounds the prepared images kept in
// memory (each holds its firmware and kernel, ~20 MiB).
func OpenStore(dir string, maxCached int) (*Store, error) {
	if maxCached <= 0 {
		maxCached = 4
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--images %s: %w", dir, err)
	}
	s := &Store{dir: dir, entries: map[string]StoreEntry{}, maxCached: maxCached, loaded: map[string]*list.Element{}, lru: list.New()}
	for _, de := range ents {
		if strings.HasPrefix(de.Name(), ".") {
			continue // temporary files of an operator's atomic copy
		}
		p := filepath.Join(dir, de.Name())
		e, ok, err := indexEntry(p)
		if err != nil {
			return nil, fmt.Errorf("--images: %s: %w", p, err)
		}
		if !ok {
			continue
		}
		if prev, dup := s.entries[e.OSImageHash]; dup {
			return nil, fmt.Errorf("--images: %s and %s both have os_image_hash %s: keep one", prev.Path, p, e.OSImageHash)
		}
		s.entries[e.OSImageHash] = e
	}
	return s, nil
}

// indexEntry names one directory member's os_image_hash; ok is false for files the store
// does not hold (READMEs, ...).
func indexEntry(p string) (StoreEntry, bool, error) {
	st, err := os.Stat(p)
	if err != nil {
		return StoreEntry{}, false, err
	}
	base := filepath.Base(p)
	switch {
	case st.IsDir():
		_, metaErr := os.Stat(filepath.Join(p, images.MetadataFileName))
		_, docErr := os.Stat(filepath.Join(p, "measurement.tdx.cbor"))
		sums, err := os.ReadFile(filepath.Join(p, "sha256sum.txt"))
		switch {
		case err != nil && metaErr != nil && docErr != nil:
			return StoreEntry{}, false, nil // not an image (lost+found, ...)
		case err != nil:
			return StoreEntry{}, false, fmt.Errorf("an image directory needs a sha256sum.txt (its SHA-256 is the os_image_hash): %w", err)
		}
		kind := KindImage
		if metaErr != nil {
			kind = KindLiteDir
		}
		sum := sha256.Sum256(sums)
		return StoreEntry{OSImageHash: hex.EncodeToString(sum[:]), Path: p, Kind: kind}, true, nil
	case !st.Mode().IsRegular():
		return StoreEntry{}, false, nil
	case strings.HasSuffix(base, ".cbor"):
		b, err := os.ReadFile(p)
		if err != nil {
			return StoreEntry{}, false, err
		}
		sum := sha256.Sum256(b)
		return StoreEntry{OSImageHash: hex.EncodeToString(sum[:]), Path: p, Kind: KindDocument}, true, nil
	}
	if m := hashName.FindStringSubmatch(base); m != nil {
		return StoreEntry{OSImageHash: m[1], Path: p, Kind: KindImage}, true, nil
	}
	for _, ext := range []string{".tar.gz", ".tgz", ".tar.zst", ".tar"} {
		if strings.HasSuffix(base, ext) {
			img, err := images.Open(p, images.Options{VerifyChecksums: true, RequireChecksums: true})
			if err != nil {
				return StoreEntry{}, false, err
			}
			return StoreEntry{OSImageHash: img.OSImageHash, Path: p, Kind: KindImage}, true, nil
		}
	}
	return StoreEntry{}, false, nil
}

// Entries lists the store's entries by hash.
func (s *Store) Entries() []StoreEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StoreEntry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OSImageHash < out[j].OSImageHash })
	return out
}

// Lookup says whether the store holds hash.
func (s *Store) Lookup(hash string) (StoreEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[hash]
	return e, ok
}

// Len is the number of entries.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// errNotStored marks a hash the store does not hold.
var errNotStored = errors.New("not in the image store")

// load returns the entry of hash, read, checked and prepared, from the cache when it is there;
// cached reports whether it was. One load runs per hash however many requests wait for it.
func (s *Store) load(hash string) (li *loadedImage, cached bool, err error) {
	s.mu.Lock()
	e, ok := s.entries[hash]
	if !ok {
		s.mu.Unlock()
		return nil, false, errNotStored
	}
	if el, ok := s.loaded[hash]; ok {
		s.lru.MoveToFront(el)
		li = el.Value.(*loadedImage)
		s.mu.Unlock()
		<-li.ready
		return li, true, li.err
	}
	li = &loadedImage{hash: hash, ready: make(chan struct{})}
	el := s.lru.PushFront(li)
	s.loaded[hash] = el
	for s.lru.Len() > s.maxCached {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.loaded, old.Value.(*loadedImage).hash)
	}
	s.mu.Unlock()

	li.err = li.fill(e)
	close(li.ready)
	if li.err != nil {
		// A failed load is not kept: the next request tries again (the file may be fixed).
		s.mu.Lock()
		if cur, ok := s.loaded[hash]; ok && cur == el {
			s.lru.Remove(el)
			delete(s.loaded, hash)
		}
		s.mu.Unlock()
	}
	return li, false, li.err
}

// fill reads and checks the entry: the image's checksums must hold and hash to the name it is
// stored under.
func (li *loadedImage) fill(e StoreEntry) error {
	switch e.Kind {
	case KindDocument:
		return nil
	case KindLiteDir:
		return li.fillLite(e)
	}
	img, err := images.Open(e.Path, images.Options{VerifyChecksums: true, RequireChecksums: true})
	if err != nil {
		return fmt.Errorf("image store entry %s: %w", e.Path, err)
	}
	if img.OSImageHash != e.OSImageHash {
		return fmt.Errorf("image store entry %s: its sha256sum.txt hashes to %s, not to the os_image_hash %s it is stored under", e.Path, img.OSImageHash, e.OSImageHash)
	}
	li.inputs = mr.InputsFromImage(img)
	if li.prepared, err = mr.Prepare(li.inputs); err != nil {
		return fmt.Errorf("image store entry %s: %w", e.Path, err)
	}
	dev := img.Metadata.IsDev
	li.isDev = &dev
	li.name = verify.ExpectedImage{Source: e.Path, Version: img.Metadata.Version}
	return nil
}

// fillLite reads a lite directory's measurement.tdx.cbor, which sha256sum.txt must list with
// its SHA-256.
func (li *loadedImage) fillLite(e StoreEntry) error {
	sums, err := os.ReadFile(filepath.Join(e.Path, "sha256sum.txt"))
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(sums); hex.EncodeToString(sum[:]) != e.OSImageHash {
		return fmt.Errorf("image store entry %s: sha256sum.txt changed since the store was indexed", e.Path)
	}
	lines, err := images.ParseChecksums(sums)
	if err != nil {
		return fmt.Errorf("image store entry %s: %w", e.Path, err)
	}
	doc, err := os.ReadFile(filepath.Join(e.Path, "measurement.tdx.cbor"))
	if err != nil {
		return fmt.Errorf("image store entry %s: a directory without metadata.json must hold measurement.tdx.cbor: %w", e.Path, err)
	}
	sum := sha256.Sum256(doc)
	listed := false
	for _, l := range lines {
		if l.Name == "measurement.tdx.cbor" {
			if l.SHA256 != hex.EncodeToString(sum[:]) {
				return fmt.Errorf("image store entry %s: measurement.tdx.cbor has SHA-256 %x, sha256sum.txt lists %s", e.Path, sum, l.SHA256)
			}
			listed = true
		}
	}
	if !listed {
		return fmt.Errorf("image store entry %s: sha256sum.txt does not list measurement.tdx.cbor, so nothing binds it to the os_image_hash", e.Path)
	}
	if _, err := verify.DecodeLite(doc); err != nil {
		return fmt.Errorf("image store entry %s: measurement.tdx.cbor: %w", e.Path, err)
	}
	li.lite = doc
	return nil
}

// apply sets the verify options for this entry: full mode with the prepared image, or lite
// mode with the document and the hash pinned (the store is the relying party's list of
// expected images).
func (li *loadedImage) apply(e StoreEntry, o *verify.Options) error {
	h, err := hex.DecodeString(e.OSImageHash)
	if err != nil {
		return err
	}
	switch e.Kind {
	case KindImage:
		in := li.inputs
		o.Image, o.PreparedImage, o.ImageOSImageHash, o.ImageName = &in, li.prepared, h, li.name
	case KindLiteDir:
		o.LiteMeasurement, o.Expect.OSImageHash = li.lite, h
	case KindDocument:
		o.Expect.OSImageHash = h
	}
	return nil
}

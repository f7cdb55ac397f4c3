package main

// Writing published artefacts (measurement documents, ACPI blobs): whole or not at all, with
// the permissions any other published file gets (0666 less the user's umask, usually 0644).

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// createPublishedTemp creates a new hidden temporary file beside the final name. Unlike
// os.CreateTemp (0600), it asks for 0666 and lets the umask decide, because the file is renamed
// into place as a published artefact that others must be able to read.
func createPublishedTemp(dir, base string) (*os.File, error) {
	for range 100 {
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, "."+base+"."+hex.EncodeToString(r[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("%s: no free temporary name", dir)
}

// writeTemp writes data to a new published temporary file for base in dir and returns its
// name; nothing is left behind on failure.
func writeTemp(dir, base string, data []byte) (string, error) {
	tmp, err := createPublishedTemp(dir, base)
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return "", errors.Join(werr, cerr)
	}
	return tmp.Name(), nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it into place, so
// a failure leaves no partial file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := writeTemp(filepath.Dir(path), filepath.Base(path), data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

package quote

import (
	"crypto/x509"
	"sync"
	"time"
)

// A service verifies many quotes from few platforms: each platform's PCK chain (three
// certificates, ~3 KiB of PEM) is parsed, and its signatures checked up to the pinned root, once
// per distinct chain. What is kept is only what holds whatever the time: the parsed
// certificates, and, once the chain has verified, the window in which every certificate is
// valid; a later verification at a time inside that window needs no signature check, one
// outside it takes the full path (and its error).

// maxCachedChains bounds the cache; a fleet has one chain per platform.
const maxCachedChains = 1024

type chainEntry struct {
	chain []*x509.Certificate

	mu       sync.Mutex
	verified bool
	from, to time.Time // validity window of the whole chain, set when verified
}

type chainCache struct {
	mu sync.Mutex
	m  map[string]*chainEntry
}

var pckChains = &chainCache{m: map[string]*chainEntry{}}

// parse returns the chain of pem, from the cache when it was parsed before. Chains that fail
// to parse are not kept.
func (c *chainCache) parse(pem []byte) ([]*x509.Certificate, *chainEntry, error) {
	key := string(pem)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return e.chain, e, nil
	}
	chain, err := parsePEMChain(pem)
	if err != nil {
		return nil, nil, err
	}
	e = &chainEntry{chain: chain}
	c.mu.Lock()
	if len(c.m) >= maxCachedChains {
		clear(c.m)
	}
	c.m[key] = e
	c.mu.Unlock()
	return chain, e, nil
}

// verify is verifyChainToPinnedRoot(chain, t), skipping the signature checks when the chain
// verified before and t lies in its validity window.
func (e *chainEntry) verify(chain []*x509.Certificate, t time.Time) error {
	e.mu.Lock()
	hit := e.verified && !t.Before(e.from) && !t.After(e.to)
	e.mu.Unlock()
	if hit {
		return nil
	}
	if err := verifyChainToPinnedRoot(chain, t); err != nil {
		return err
	}
	from, to := chain[0].NotBefore, chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotBefore.After(from) {
			from = c.NotBefore
		}
		if c.NotAfter.Before(to) {
			to = c.NotAfter
		}
	}
	e.mu.Lock()
	e.verified, e.from, e.to = true, from, to
	e.mu.Unlock()
	return nil
}

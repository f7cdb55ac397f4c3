package images

import (
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// hashPipe computes several digests of one stream side by side: each hash runs on its own
// goroutine, fed chunks from a small ring of buffers, so a SHA-256 and a SHA-384 of a large
// initrd take as long as the slower of the two, not their sum, and overlap with reading (or
// decompressing) the stream. Memory is bounded by the ring whatever the stream's size.
type hashPipe struct {
	hashes []hash.Hash
	feeds  []chan *hashChunk
	free   chan *hashChunk
	cur    *hashChunk
	wg     sync.WaitGroup
	closed bool
}

type hashChunk struct {
	b    []byte
	refs atomic.Int32
}

const (
	hashChunkBytes = 1 << 20
	hashChunks     = 4
)

func newHashPipe(hashes ...hash.Hash) *hashPipe {
	p := &hashPipe{hashes: hashes, free: make(chan *hashChunk, hashChunks)}
	for range hashChunks {
		p.free <- &hashChunk{b: make([]byte, 0, hashChunkBytes)}
	}
	for _, h := range hashes {
		feed := make(chan *hashChunk, hashChunks)
		p.feeds = append(p.feeds, feed)
		p.wg.Go(func() {
			for c := range feed {
				h.Write(c.b)
				if c.refs.Add(-1) == 0 {
					p.free <- c
				}
			}
		})
	}
	return p
}

// chunk returns the chunk being filled, taking a free one when there is none.
func (p *hashPipe) chunk() *hashChunk {
	if p.cur == nil {
		p.cur = <-p.free
		p.cur.b = p.cur.b[:0]
	}
	return p.cur
}

// send hands the chunk being filled to every hash.
func (p *hashPipe) send() {
	c := p.cur
	p.cur = nil
	if c == nil || len(c.b) == 0 {
		if c != nil {
			p.free <- c
		}
		return
	}
	c.refs.Store(int32(len(p.feeds)))
	for _, f := range p.feeds {
		f <- c
	}
}

// Write copies b into the ring; hashing happens behind it. It never fails.
func (p *hashPipe) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		c := p.chunk()
		k := copy(c.b[len(c.b):cap(c.b)], b)
		c.b = c.b[:len(c.b)+k]
		b = b[k:]
		if len(c.b) == cap(c.b) {
			p.send()
		}
	}
	return n, nil
}

// ReadFrom reads r straight into the ring's buffers (io.Copy uses it), sparing a copy.
func (p *hashPipe) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		c := p.chunk()
		k, err := r.Read(c.b[len(c.b):cap(c.b)])
		c.b = c.b[:len(c.b)+k]
		total += int64(k)
		if len(c.b) == cap(c.b) {
			p.send()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close hashes what is left and waits for every hash to finish; the hashes' Sum is then
// final. Safe to call more than once.
func (p *hashPipe) Close() {
	if p.closed {
		return
	}
	p.closed = true
	p.send()
	for _, f := range p.feeds {
		close(f)
	}
	p.wg.Wait()
}

package images

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"io"
	"math/rand"
	"testing"
)

// The pipelined digests equal one-pass digests for streams around the ring's chunk and ring
// sizes, written in pieces of every size and read through ReadFrom.
func TestHashPipeMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, hashChunkBytes - 1, hashChunkBytes, hashChunkBytes + 1, hashChunks*hashChunkBytes + 12345} {
		data := make([]byte, size)
		rng.Read(data)
		want256, want384 := sha256.Sum256(data), sha512.Sum384(data)
		for _, how := range []string{"write", "pieces", "readfrom"} {
			h256, h384 := sha256.New(), sha512.New384()
			p := newHashPipe(h256, h384)
			switch how {
			case "write":
				p.Write(data)
			case "pieces":
				for b := data; len(b) > 0; {
					k := min(len(b), 1+rng.Intn(3*hashChunkBytes/2))
					p.Write(b[:k])
					b = b[k:]
				}
			case "readfrom":
				if n, err := io.Copy(p, io.LimitReader(bytes.NewReader(data), int64(size)+1)); err != nil || n != int64(size) {
					t.Fatalf("copied %d, %v", n, err)
				}
			}
			p.Close()
			p.Close()
			for _, c := range []struct {
				h    hash.Hash
				want []byte
			}{{h256, want256[:]}, {h384, want384[:]}} {
				if got := c.h.Sum(nil); !bytes.Equal(got, c.want) {
					t.Fatalf("%d bytes by %s: digest %x, want %x", size, how, got, c.want)
				}
			}
		}
	}
}

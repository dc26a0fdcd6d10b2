package cas

// Key layout. Every key the store writes starts with Prefix; the rest of the
// database belongs to other packages.
//
//	c/b/<32-byte digest>  blob record: an inline blob, or its size and manifest (record.go)
//	c/k/<32-byte digest>  chunk value: one header byte, then raw or zstd bytes (codec.go)
//	c/p/<32-byte digest>  manifest page: chunk or page references, stored like a chunk
//
// Digests are the SHA-256 of the blob, of the chunk's raw bytes, and of the
// page's encoded bytes respectively.
const Prefix = "c/"

const (
	blobPrefix  = Prefix + "b/"
	chunkPrefix = Prefix + "k/"
	pagePrefix  = Prefix + "p/"
	keyLen      = len(blobPrefix) + len(Digest{})
)

type key [keyLen]byte

func makeKey(prefix string, d Digest) key {
	var k key
	copy(k[:], prefix)
	copy(k[len(prefix):], d[:])
	return k
}

func blobKey(d Digest) []byte  { k := makeKey(blobPrefix, d); return k[:] }
func chunkKey(d Digest) []byte { k := makeKey(chunkPrefix, d); return k[:] }
func pageKey(d Digest) []byte  { k := makeKey(pagePrefix, d); return k[:] }

// appendKey appends prefix+d to dst; Put uses it to keep keys in a segment's
// arena instead of allocating one per chunk.
func appendKey(dst []byte, prefix string, d Digest) []byte {
	dst = append(dst, prefix...)
	return append(dst, d[:]...)
}

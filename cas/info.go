package cas

// Info describes a stored blob.
type Info struct {
	Digest Digest
	Size   int64 // content length in bytes
	// Chunks is the number of chunk references in the blob's manifest
	// (repeats counted); 0 for an inline blob.
	Chunks int64
	// StoredBytes (filled by Stat) is what the blob occupies in the
	// database, keys included: its record, manifest pages and each distinct
	// chunk once, compressed as stored. Chunks shared with other blobs are
	// counted in full here; Usage counts them once for the whole store.
	StoredBytes int64
	// Written (filled by Put, PutBytes) is the bytes of keys and values that
	// call added: 0 when the blob was already stored, the new chunks, pages
	// and record otherwise.
	Written int64
}

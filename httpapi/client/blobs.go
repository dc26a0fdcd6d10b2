package client

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/buildledger/buildledger/cas/digest"
)

// The batch blob route (GET /blobs?sha256=HEX,HEX,...) answers with one
// frame per digest asked for, in order: the 32-byte digest, a status
// byte, an 8-byte big-endian length and, for BlobOK, that many bytes.
// Only small blobs (at most MaxBatchBlob bytes) come in a batch: a larger
// one is answered BlobTooLarge, to be fetched from /blob/SHA256 alone.
const (
	BlobOK       = 0
	BlobAbsent   = 1
	BlobTooLarge = 2
	// MaxBatchDigests is how many digests one request may name.
	MaxBatchDigests = 128
	// MaxBatchBlob is the largest blob a batch carries.
	MaxBatchBlob = 64 << 10
)

// StoredBlobs fetches small blobs in one request each MaxBatchDigests
// digests: fn gets each blob served, verified against its digest (in the
// order asked); the digests answered too large, to be fetched one by one
// (StoredBlob), are returned. A blob the server does not have is an error.
// fn must not keep b past its return.
func (c *Client) StoredBlobs(ctx context.Context, ds []digest.Digest, fn func(d digest.Digest, b []byte) error) (large []digest.Digest, err error) {
	for len(ds) > 0 {
		n := min(len(ds), MaxBatchDigests)
		l, err := c.storedBatch(ctx, ds[:n], fn)
		if err != nil {
			return nil, err
		}
		large = append(large, l...)
		ds = ds[n:]
	}
	return large, nil
}

func (c *Client) storedBatch(ctx context.Context, ds []digest.Digest, fn func(d digest.Digest, b []byte) error) ([]digest.Digest, error) {
	hexes := make([]string, len(ds))
	for i, d := range ds {
		hexes[i] = d.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("blobs")+"?sha256="+strings.Join(hexes, ","), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("blobs: %s (%s)", strings.TrimSpace(string(b)), resp.Status)}
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var large []digest.Digest
	buf := make([]byte, MaxBatchBlob)
	for _, want := range ds {
		var head [41]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return nil, fmt.Errorf("blobs: the answer is cut short: %w", err)
		}
		if digest.Digest(head[:32]) != want {
			return nil, fmt.Errorf("SECURITY: blobs: the server answered %x where %s was asked for", head[:32], want)
		}
		size := binary.BigEndian.Uint64(head[33:])
		switch head[32] {
		case BlobAbsent:
			return nil, &Error{Status: http.StatusNotFound, Msg: "blob " + want.String() + ": the server does not have it"}
		case BlobTooLarge:
			large = append(large, want)
			continue
		case BlobOK:
		default:
			return nil, fmt.Errorf("blobs: unknown status %d for %s", head[32], want)
		}
		if size > MaxBatchBlob {
			return nil, fmt.Errorf("blobs: %s comes with %d bytes, more than a batch carries", want, size)
		}
		b := buf[:size]
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("blobs: the answer is cut short: %w", err)
		}
		if got := sha256.Sum256(b); digest.Digest(got) != want {
			return nil, fmt.Errorf("SECURITY: blob %s has SHA-256 %x", want, got)
		}
		if err := fn(want, b); err != nil {
			return nil, err
		}
	}
	return large, nil
}

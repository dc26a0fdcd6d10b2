// Package trillianlog puts the ledger's transparency log on a Google
// Trillian cluster (github.com/google/trillian, with its MariaDB/MySQL or
// PostgreSQL storage): an implementation of ledger.Backend over Trillian's
// gRPC API.
//
// The tree is a PREORDERED_LOG. The ledger decides every entry's index
// itself, because it must check an event against the state the entries
// before it produced (a build recorded twice, an attestation by a key
// revoked just before) before the event gets an index; Trillian's ordinary
// LOG mode assigns indices after the fact, in an order of its choosing. So
// Integrate writes a batch with AddSequencedLeaves at the indices the ledger
// chose, waits until Trillian's signer has integrated them, and checks that
// Trillian's root is the one the ledger computed (directly, or through a
// consistency proof when the log has grown since). A leaf added again at
// its own index (a retry) is accepted; an index holding other data means
// the ledger is behind (ledger.ErrBehind) — entries written before a crash
// — and the ledger catches up by reading them back (Leaves).
//
// Trillian's log roots are not signed (types.LogRootV1 is a plain
// structure), so the ledger signs its own C2SP checkpoints over them. Roots
// and proofs are checked with the Trillian client's verifier and
// transparency-dev/merkle.
//
// The gRPC connection is plaintext only to a loopback address; anything
// else takes TLS, the server verified against a given CA, optionally with
// a client certificate (mutual TLS), or an explicit Insecure (see TLS and
// TestTLSCredentials, which dials real gRPC servers with certificates of a
// CA made for the test and proves a wrong CA fails).
package trillianlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian"
	tclient "github.com/google/trillian/client"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/buildledger/buildledger/ledger"
)

// Log is a Trillian PREORDERED_LOG tree used as a ledger.Backend.
type Log struct {
	conn   *grpc.ClientConn
	log    trillian.TrillianLogClient
	treeID int64
	// Poll is how often Integrate asks whether the signer has integrated
	// a batch. Default 20 ms.
	Poll time.Duration
}

var _ ledger.Backend = (*Log)(nil)

// Dial connects to a Trillian log server (host:port) and checks that tree
// treeID exists and is a PREORDERED_LOG with RFC 6962 hashing. The
// connection is plaintext gRPC unless opts hold transport credentials
// (see TLS.Credentials).
func Dial(ctx context.Context, addr string, treeID int64, opts ...grpc.DialOption) (*Log, error) {
	conn, err := newClient(addr, opts)
	if err != nil {
		return nil, fmt.Errorf("trillian %s: %w", addr, err)
	}
	l := &Log{conn: conn, log: trillian.NewTrillianLogClient(conn), treeID: treeID}
	tree, err := trillian.NewTrillianAdminClient(conn).GetTree(ctx, &trillian.GetTreeRequest{TreeId: treeID})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("trillian %s: tree %d: %w", addr, treeID, err)
	}
	if tree.TreeType != trillian.TreeType_PREORDERED_LOG {
		conn.Close()
		return nil, fmt.Errorf("trillian tree %d is a %s; the ledger needs a PREORDERED_LOG (create one with 'ledger trillian create-tree')", treeID, tree.TreeType)
	}
	if tree.TreeState != trillian.TreeState_ACTIVE {
		conn.Close()
		return nil, fmt.Errorf("trillian tree %d is %s, not ACTIVE", treeID, tree.TreeState)
	}
	if _, err := l.root(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return l, nil
}

// CreateTree creates and initialises a PREORDERED_LOG tree for a ledger on
// the Trillian server at addr and returns its id.
func CreateTree(ctx context.Context, addr, name string, opts ...grpc.DialOption) (int64, error) {
	if len(name) > 20 {
		name = name[:20] // Trillian's DisplayName column
	}
	conn, err := newClient(addr, opts)
	if err != nil {
		return 0, fmt.Errorf("trillian %s: %w", addr, err)
	}
	defer conn.Close()
	// One plain call first: the Trillian client retries an unavailable
	// server until ctx ends, which would hide a refused TLS handshake (a
	// wrong CA, plaintext to a TLS server) behind a minute of retries.
	// Any answer but Unavailable (tree 0 does not exist) says the
	// connection works.
	if _, err := trillian.NewTrillianAdminClient(conn).GetTree(ctx, &trillian.GetTreeRequest{TreeId: 0}); status.Code(err) == codes.Unavailable {
		return 0, fmt.Errorf("trillian %s: %w", addr, err)
	}
	tree, err := tclient.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        trillian.TreeType_PREORDERED_LOG,
		DisplayName:     name,
		Description:     "buildledger event log",
		MaxRootDuration: durationpb.New(time.Hour),
	}}, trillian.NewTrillianAdminClient(conn), trillian.NewTrillianLogClient(conn))
	if err != nil {
		return 0, fmt.Errorf("trillian %s: creating a tree: %w", addr, err)
	}
	return tree.TreeId, nil
}

// newClient connects to addr: plaintext unless opts say otherwise (a later
// WithTransportCredentials replaces an earlier one).
func newClient(addr string, opts []grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
}

// TreeID returns the tree's id.
func (l *Log) TreeID() int64 { return l.treeID }

// Close closes the connection.
func (l *Log) Close() error { return l.conn.Close() }

func (l *Log) root(ctx context.Context) (*types.LogRootV1, error) {
	resp, err := l.log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: l.treeID})
	if err != nil {
		return nil, fmt.Errorf("trillian tree %d: %w", l.treeID, err)
	}
	var r types.LogRootV1
	if err := r.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return nil, fmt.Errorf("trillian tree %d: log root: %w", l.treeID, err)
	}
	if len(r.RootHash) != 32 {
		return nil, fmt.Errorf("trillian tree %d: root hash of %d bytes", l.treeID, len(r.RootHash))
	}
	return &r, nil
}

// Root returns the size and root hash of the integrated log.
func (l *Log) Root(ctx context.Context) (uint64, [32]byte, error) {
	r, err := l.root(ctx)
	if err != nil {
		return 0, [32]byte{}, err
	}
	return r.TreeSize, [32]byte(r.RootHash), nil
}

// identity is a leaf's identity hash: Trillian must never treat two entries
// as duplicates, so it covers the index as well as the leaf.
func identity(index uint64, leaf []byte) []byte {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	h.Write(leaf)
	return h.Sum(nil)
}

// Integrate adds leaves at first, first+1, ... and waits until they are
// integrated under the given root. A zero root means a resend of a batch
// that may already be (partly) stored: indices already taken are skipped
// and the root is not checked here (the ledger's catch-up checks it).
//
// Trillian's storage keeps the leaves of a request whose indices are free
// even when others in it are taken, so a batch that might collide must not
// be sent whole: the first leaf goes alone, and only if it lands are the
// rest sent. With one ledger writing to a tree (the rule), the rest cannot
// collide; the ledger resends its own unfinished batch before any new one
// (see ledger.Backend).
func (l *Log) Integrate(ctx context.Context, first uint64, leaves [][]byte, root [32]byte) error {
	if len(leaves) == 0 {
		return nil
	}
	resend := root == [32]byte{}
	if !resend {
		if err := l.add(ctx, first, leaves[:1], false); err != nil {
			return err
		}
		if err := l.add(ctx, first+1, leaves[1:], false); err != nil {
			return err
		}
	} else if err := l.add(ctx, first, leaves, true); err != nil {
		return err
	}
	end := first + uint64(len(leaves))
	if err := l.waitFor(ctx, end); err != nil {
		return err
	}
	if resend {
		return nil
	}
	r, err := l.root(ctx)
	if err != nil {
		return err
	}
	if r.TreeSize == end {
		if [32]byte(r.RootHash) != root {
			return fmt.Errorf("SECURITY: trillian tree %d has root %x at size %d, the ledger computed %x", l.treeID, r.RootHash, end, root)
		}
		return nil
	}
	p, err := l.ConsistencyProof(ctx, end, r.TreeSize)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, end, r.TreeSize, p, root[:], r.RootHash); err != nil {
		return fmt.Errorf("SECURITY: trillian tree %d at size %d is not an extension of the ledger's root at size %d: %v", l.treeID, r.TreeSize, end, err)
	}
	return nil
}

// add sends leaves at first, first+1, ... With resend, taken indices are
// expected; otherwise a taken index is ledger.ErrBehind (once it is
// integrated, so the ledger can read it back).
func (l *Log) add(ctx context.Context, first uint64, leaves [][]byte, resend bool) error {
	if len(leaves) == 0 {
		return nil
	}
	req := &trillian.AddSequencedLeavesRequest{LogId: l.treeID}
	for i, data := range leaves {
		idx := first + uint64(i)
		req.Leaves = append(req.Leaves, &trillian.LogLeaf{LeafValue: data, LeafIndex: int64(idx), LeafIdentityHash: identity(idx, data)})
	}
	resp, err := l.log.AddSequencedLeaves(ctx, req)
	if err != nil {
		return fmt.Errorf("trillian tree %d: adding entries %d…%d: %w", l.treeID, first, first+uint64(len(leaves))-1, err)
	}
	if len(resp.Results) != len(leaves) {
		return fmt.Errorf("trillian tree %d: %d results for %d entries", l.treeID, len(resp.Results), len(leaves))
	}
	for i, r := range resp.Results {
		idx := first + uint64(i)
		switch codes.Code(r.GetStatus().GetCode()) {
		case codes.OK:
		case codes.AlreadyExists, codes.FailedPrecondition:
			if resend || (r.GetLeaf() != nil && bytes.Equal(r.GetLeaf().GetLeafValue(), leaves[i])) {
				continue
			}
			if err := l.waitFor(ctx, idx+1); err != nil {
				return err
			}
			return fmt.Errorf("%w: trillian tree %d already holds another entry at index %d", ledger.ErrBehind, l.treeID, idx)
		default:
			return fmt.Errorf("trillian tree %d: entry %d: %s", l.treeID, idx, r.GetStatus().GetMessage())
		}
	}
	return nil
}

// waitFor polls until the integrated log has at least size entries.
func (l *Log) waitFor(ctx context.Context, size uint64) error {
	poll := l.Poll
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	for {
		r, err := l.root(ctx)
		if err != nil {
			return err
		}
		if r.TreeSize >= size {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("trillian tree %d: entries up to %d not integrated after waiting (is trillian_log_signer running?): %w", l.treeID, size-1, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Leaves returns the integrated entries from, ..., to-1, checking each
// one's index and leaf hash.
func (l *Log) Leaves(ctx context.Context, from, to uint64) ([][]byte, error) {
	var out [][]byte
	for next := from; next < to; {
		resp, err := l.log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: l.treeID, StartIndex: int64(next), Count: int64(min(to-next, 1000))})
		if err != nil {
			return nil, fmt.Errorf("trillian tree %d: entries from %d: %w", l.treeID, next, err)
		}
		if len(resp.Leaves) == 0 {
			return nil, fmt.Errorf("trillian tree %d: no entry at %d", l.treeID, next)
		}
		for _, lf := range resp.Leaves {
			if uint64(lf.LeafIndex) != next {
				return nil, fmt.Errorf("trillian tree %d: asked for entry %d, got %d", l.treeID, next, lf.LeafIndex)
			}
			if h := rfc6962.DefaultHasher.HashLeaf(lf.LeafValue); !bytes.Equal(h, lf.MerkleLeafHash) {
				return nil, fmt.Errorf("SECURITY: trillian tree %d: entry %d does not match its leaf hash", l.treeID, next)
			}
			out = append(out, lf.LeafValue)
			next++
			if next == to {
				break
			}
		}
	}
	return out, nil
}

// ConsistencyProof returns Trillian's proof that size a is a prefix of b.
func (l *Log) ConsistencyProof(ctx context.Context, a, b uint64) ([][]byte, error) {
	if a == b || a == 0 {
		return nil, nil
	}
	resp, err := l.log.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{LogId: l.treeID, FirstTreeSize: int64(a), SecondTreeSize: int64(b)})
	if err != nil {
		return nil, fmt.Errorf("trillian tree %d: consistency %d→%d: %w", l.treeID, a, b, err)
	}
	return resp.GetProof().GetHashes(), nil
}

// InclusionProof returns Trillian's proof of entry index in size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	resp, err := l.log.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{LogId: l.treeID, LeafIndex: int64(index), TreeSize: int64(size)})
	if err != nil {
		return nil, fmt.Errorf("trillian tree %d: inclusion of %d in %d: %w", l.treeID, index, size, err)
	}
	if resp.GetProof() == nil {
		return nil, errors.New("trillian: no proof (the tree is smaller than asked)")
	}
	return resp.GetProof().GetHashes(), nil
}

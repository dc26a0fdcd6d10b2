package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/buildledger/buildledger/ledger/checkpoint"
	"github.com/buildledger/buildledger/ledger/witnessing"
)

// ErrNoWitnessQuorum: a checkpoint lacks the cosignatures the client's
// witness policy requires, so it may be one history among several that the
// server shows.
var ErrNoWitnessQuorum = errors.New("SECURITY: the checkpoint lacks the witness cosignatures the policy requires")

// RequireWitnesses makes the client accept only checkpoints cosigned by a
// quorum of the witnesses of policy (transparency-dev's witness policy
// format; its witness lines need URLs, which are not used): Checkpoint then returns the server's
// newest witnessed checkpoint (GET /checkpoint/witnessed), and Lookup
// proves its answer within one (WitnessedCovers).
func (c *Client) RequireWitnesses(policy []byte) error {
	g, err := witnessing.ParsePolicy(policy)
	if err != nil {
		return err
	}
	c.witnesses = &g
	return nil
}

// Witnessed fetches the server's newest checkpoint with a quorum of
// cosignatures and checks both its signature and the quorum.
func (c *Client) Witnessed(ctx context.Context) (*checkpoint.Checkpoint, error) {
	if c.witnesses == nil {
		return nil, errors.New("no witness policy (RequireWitnesses)")
	}
	b, err := fetch(ctx, c.http, c.url("checkpoint/witnessed"), "")
	if err != nil {
		return nil, c.notFound(err, fmt.Sprintf("%s serves no witnessed checkpoints (its operator runs it without --witness-policy)", c.base))
	}
	cp, err := c.openCheckpoint(ctx, b)
	if err != nil {
		return nil, err
	}
	if !c.witnesses.Satisfied(b) {
		return nil, fmt.Errorf("%w (checkpoint %d of %s)", ErrNoWitnessQuorum, cp.Size, c.origin)
	}
	return cp, nil
}

// WitnessedCovers proves that the entries at indices, verified under cp,
// are in a witnessed checkpoint, and returns it: cp extends to it, or it
// is a prefix of cp that holds every one of them. Entries newer than the
// newest witnessed checkpoint are not witnessed yet: an error says so.
func (c *Client) WitnessedCovers(ctx context.Context, cp *checkpoint.Checkpoint, indices []uint64) (*checkpoint.Checkpoint, error) {
	w, err := c.Witnessed(ctx)
	if err != nil {
		return nil, err
	}
	if w.Size >= cp.Size {
		return w, c.CheckConsistency(ctx, cp, w)
	}
	if err := c.CheckConsistency(ctx, w, cp); err != nil {
		return nil, err
	}
	for _, i := range indices {
		if i >= w.Size {
			return nil, fmt.Errorf("log entry %d is newer than the newest witnessed checkpoint (size %d): not witnessed yet; try again once the witnesses cosigned a newer one", i, w.Size)
		}
	}
	return w, nil
}

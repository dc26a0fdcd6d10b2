package benchmarks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/trillian"
	tclient "github.com/google/trillian/client"
	"github.com/google/trillian/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/buildledger/buildledger/ledger"
)

// TrillianAlone is the baseline for appends on Trillian: Trillian's own
// rate for the same event bytes, used as it is meant to be, with no ledger
// around it. appenders goroutines queue the b.N leaves into an ordinary
// LOG tree (QueueLeaf: durable in MariaDB when it returns), and the run
// ends when the signer has integrated the last of them (the root is polled
// every poll). Trillian batches whatever is queued, so this is its best
// case: nobody waits for integration between two leaves, as every ledger
// append does. The tree is created, and its first leaf integrated (the
// signer finds new trees only from time to time), before the clock starts,
// as the ledger's own first entry is in AppendOn.
func TrillianAlone(b *testing.B, addr string, appenders int, poll time.Duration) {
	ctx := context.Background()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	tree, err := tclient.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState: trillian.TreeState_ACTIVE, TreeType: trillian.TreeType_LOG,
		DisplayName: "baseline", MaxRootDuration: durationpb.New(time.Hour),
	}}, trillian.NewTrillianAdminClient(conn), trillian.NewTrillianLogClient(conn))
	if err != nil {
		b.Fatal(err)
	}
	log := trillian.NewTrillianLogClient(conn)
	queue := func(data []byte) error {
		_, err := log.QueueLeaf(ctx, &trillian.QueueLeafRequest{LogId: tree.TreeId, Leaf: &trillian.LogLeaf{LeafValue: data}})
		return err
	}
	integrated := func(size uint64) error {
		for deadline := time.Now().Add(2 * time.Minute); ; {
			resp, err := log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: tree.TreeId})
			if err != nil {
				return err
			}
			var root types.LogRootV1
			if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
				return err
			}
			if root.TreeSize >= size {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("trillian integrated %d of %d leaves", root.TreeSize, size)
			}
			time.Sleep(poll)
		}
	}
	leaves := make([][]byte, b.N)
	for i := range leaves {
		if leaves[i], err = ledger.Encode(BuildEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := queue([]byte("first")); err != nil {
		b.Fatal(err)
	}
	if err := integrated(1); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := concurrently(appenders, b.N, func(i int) error { return queue(leaves[i]) }); err != nil {
		b.Fatal(err)
	}
	if err := integrated(uint64(b.N) + 1); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

package replica

import (
	"sync/atomic"
	"time"

	"github.com/buildledger/buildledger/httpapi"
)

var _ httpapi.Follower = (*Replica)(nil)

// status is what a Replica reports about its progress.
type status struct {
	primarySize atomic.Uint64 // newest verified checkpoint of the primary
	lastSync    atomic.Int64  // Unix nanoseconds of the last complete sync; 0: never
}

// State reports the replica's progress: the size of the newest checkpoint
// of the primary it verified, how many entries it holds, and when it last
// caught up. The server's /readyz and /metrics read it. TestReplicaState.
func (r *Replica) State() httpapi.ReplicaState {
	st := httpapi.ReplicaState{PrimarySize: r.status.primarySize.Load(), Size: r.Ledger.Size()}
	if ns := r.status.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
	}
	return st
}

// saw notes a verified checkpoint of the primary.
func (r *Replica) saw(size uint64) {
	for {
		old := r.status.primarySize.Load()
		if size <= old || r.status.primarySize.CompareAndSwap(old, size) {
			return
		}
	}
}

// synced notes that the replica caught up with the primary.
func (r *Replica) synced() { r.status.lastSync.Store(time.Now().UnixNano()) }

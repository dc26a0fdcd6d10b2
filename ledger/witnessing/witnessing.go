// Package witnessing asks witnesses to cosign the ledger's checkpoints, as
// C2SP tlog-witness specifies: for each new checkpoint it sends every
// witness of a policy (transparency-dev/formats' witness policy format:
// "witness NAME VKEY URL", "group NAME N|any|all MEMBERS...", "quorum
// NAME") the size it last saw and a consistency proof to the new one,
// learns the witness's size from a 409 and tries again, and verifies each
// cosignature (C2SP tlog-cosignature) with the witness's key. The
// checkpoint with the cosignatures it got is what the ledger serves; the
// policy says whether they make a quorum. A witness that refuses (the
// ledger's history is not consistent with what it saw) is logged loudly:
// that is what witnesses are for.
package witnessing

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/ledger/checkpoint"
)

// Prover gives consistency proofs between two sizes of the log, and its
// size.
type Prover interface {
	ConsistencyProof(size1, size2 uint64) ([][]byte, error)
	Size() uint64
}

// Config configures witnessing.
type Config struct {
	Policy []byte // the witness policy
	Prover Prover
	HTTP   *http.Client // nil: a client with a 10 s timeout
	Logger *slog.Logger // nil: slog.Default()
	// Grace is how long the other witnesses are waited for once the
	// cosignatures so far make a quorum; 0: 2 s.
	Grace time.Duration
}

// Witnessing cosigns checkpoints with the policy's witnesses.
type Witnessing struct {
	cfg       Config
	policy    witness.Group
	endpoints map[string]note.Verifier // add-checkpoint URL → cosignature verifier

	mu     sync.Mutex
	sizes  map[string]uint64 // the size each witness last cosigned or reported
	latest Cosigned
	quorum Cosigned // the newest with quorum
}

// Cosigned is a checkpoint with the cosignatures it got.
type Cosigned struct {
	Note    []byte // the checkpoint note with the log's signature and the cosignatures
	Size    uint64
	Quorum  bool     // the cosignatures satisfy the policy
	Signed  []string // the witnesses (URLs) that cosigned it
	Missing []string // those that did not, with why
}

// ParsePolicy parses a witness policy and refuses one that names no
// witness or that a checkpoint without any cosignature satisfies (a
// threshold of 0): requiring such a policy would require nothing.
func ParsePolicy(policy []byte) (witness.Group, error) {
	g, err := witness.ParsePolicy(policy)
	if err != nil {
		return g, fmt.Errorf("witness policy: %w", err)
	}
	if len(g.Endpoints()) == 0 {
		return g, errors.New("witness policy: it names no witness")
	}
	if g.Satisfied([]byte("unsigned\n\n\u2014 nobody AAAAAAAAAA==\n")) {
		return g, errors.New("witness policy: its quorum is met without any cosignature (a threshold of 0)")
	}
	return g, nil
}

// New parses the policy (ParsePolicy).
func New(cfg Config) (*Witnessing, error) {
	g, err := ParsePolicy(cfg.Policy)
	if err != nil {
		return nil, err
	}
	eps := g.Endpoints()
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Grace == 0 {
		cfg.Grace = 2 * time.Second
	}
	return &Witnessing{cfg: cfg, policy: g, endpoints: eps, sizes: map[string]uint64{}}, nil
}

// Latest returns the newest checkpoint cosigned so far (zero before the
// first).
func (w *Witnessing) Latest() Cosigned {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}

// Cosign asks every witness to cosign cp, in parallel, and keeps the
// result as Latest if cp is at least as new.
func (w *Witnessing) Cosign(ctx context.Context, cp *checkpoint.Checkpoint) Cosigned {
	type answer struct {
		url string
		sig []byte
		err error
	}
	answers := make(chan answer, len(w.endpoints))
	for u, v := range w.endpoints {
		go func() {
			sig, err := w.add(ctx, u, v, cp)
			answers <- answer{u, sig, err}
		}()
	}
	out := Cosigned{Note: slices.Clone(cp.Note), Size: cp.Size}
	var sigs [][]byte
	pending := map[string]bool{}
	for u := range w.endpoints {
		pending[u] = true
	}
	// Once the cosignatures so far make a quorum, the others get Grace
	// more: one slow witness does not hold the checkpoint back.
	var grace <-chan time.Time
wait:
	for len(pending) > 0 {
		select {
		case a := <-answers:
			delete(pending, a.url)
			if a.err != nil {
				out.Missing = append(out.Missing, a.url+": "+a.err.Error())
				continue
			}
			out.Signed = append(out.Signed, a.url)
			sigs = append(sigs, a.sig)
			if grace == nil && w.policy.Satisfied(append(slices.Clone(cp.Note), bytes.Join(sigs, nil)...)) {
				grace = time.After(w.cfg.Grace)
			}
		case <-grace:
			break wait
		}
	}
	for u := range pending {
		out.Missing = append(out.Missing, u+": no answer within "+w.cfg.Grace.String()+" of the quorum")
	}
	slices.Sort(out.Signed)
	slices.Sort(out.Missing)
	slices.SortFunc(sigs, bytes.Compare)
	for _, s := range sigs {
		out.Note = append(out.Note, s...)
	}
	if n := bytes.Count(out.Note, []byte("\n\u2014 ")); n > 100 {
		// note.Open reads at most 100 signatures: keep the log's own.
		w.cfg.Logger.Error("too many cosignatures to serve; serving the checkpoint without them", "signatures", n)
		out.Note, out.Signed = slices.Clone(cp.Note), nil
	}
	out.Quorum = w.policy.Satisfied(out.Note)
	w.mu.Lock()
	if out.Size >= w.latest.Size {
		w.latest = out
	}
	if out.Quorum && out.Size >= w.quorum.Size {
		w.quorum = out
	}
	w.mu.Unlock()
	return out
}

// LatestQuorum returns the newest checkpoint whose cosignatures satisfy
// the policy (zero before the first): what a client that requires
// witnesses asks for, even while newer checkpoints await theirs.
func (w *Witnessing) LatestQuorum() Cosigned {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.quorum
}

// ErrRefused: a witness refused the checkpoint (its status says why).
var ErrRefused = errors.New("the witness refused the checkpoint")

// add sends cp to the witness at url (C2SP tlog-witness add-checkpoint)
// and returns its verified cosignature line.
func (w *Witnessing) add(ctx context.Context, url string, v note.Verifier, cp *checkpoint.Checkpoint) ([]byte, error) {
	w.mu.Lock()
	old := w.sizes[url]
	w.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if old > cp.Size {
			if w.cfg.Prover.Size() >= old {
				// It saw a newer checkpoint of this log (anyone may
				// submit one): it will cosign the next.
				return nil, fmt.Errorf("the witness already has this log at size %d, past this checkpoint's %d", old, cp.Size)
			}
			w.cfg.Logger.Error("witness has a larger log than this ledger", "witness", url, "witness size", old, "size", cp.Size)
			return nil, fmt.Errorf("%w: SECURITY: the witness has seen this log at size %d, larger than this ledger's %d: the log's history was rewound", ErrRefused, old, w.cfg.Prover.Size())
		}
		var proof [][]byte
		if old > 0 && old < cp.Size {
			var err error
			if proof, err = w.cfg.Prover.ConsistencyProof(old, cp.Size); err != nil {
				return nil, err
			}
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		for _, h := range proof {
			body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
		}
		body.WriteString("\n")
		body.Write(cp.Note)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
		if err != nil {
			return nil, err
		}
		resp, err := w.cfg.HTTP.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			sig, err := w.verify(v, cp, b)
			if err != nil {
				return nil, err
			}
			w.mu.Lock()
			if w.sizes[url] < cp.Size {
				w.sizes[url] = cp.Size
			}
			w.mu.Unlock()
			return sig, nil
		case http.StatusConflict:
			if old == cp.Size {
				// It holds a checkpoint of this very size with another
				// root: this ledger showed it a different history.
				w.cfg.Logger.Error("witness refused the checkpoint", "witness", url, "status", resp.StatusCode, "size", cp.Size,
					"why", "SECURITY: the witness holds another checkpoint of the same size")
				return nil, fmt.Errorf("%w: SECURITY: the witness holds another checkpoint of size %d: the log's history differs from the one it witnessed", ErrRefused, cp.Size)
			}
			// The witness has another size for this log: try again from it.
			n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil || attempt > 0 {
				return nil, fmt.Errorf("409 with size %q after %d attempts", strings.TrimSpace(string(b)), attempt+1)
			}
			old = n
			w.mu.Lock()
			w.sizes[url] = n
			w.mu.Unlock()
		case http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusBadRequest:
			reason := map[int]string{
				http.StatusForbidden:           "it does not accept this log's signature (is the log's key registered with it?)",
				http.StatusNotFound:            "it does not know this log (register its origin and key with the witness)",
				http.StatusUnprocessableEntity: "SECURITY: the consistency proof from what it saw does not verify: the log's history differs from the one it witnessed",
				http.StatusBadRequest:          "it found the request malformed",
			}[resp.StatusCode]
			w.cfg.Logger.Error("witness refused the checkpoint", "witness", url, "status", resp.StatusCode, "size", cp.Size, "why", reason, "answer", strings.TrimSpace(string(b)))
			return nil, fmt.Errorf("%w: %s (%s)", ErrRefused, reason, resp.Status)
		default:
			return nil, fmt.Errorf("the witness answered %s", resp.Status)
		}
	}
}

// verify checks a witness's answer: signature lines, one of which is a
// cosignature by v of cp.
func (w *Witnessing) verify(v note.Verifier, cp *checkpoint.Checkpoint, answer []byte) ([]byte, error) {
	text := cp.Note[:bytes.Index(cp.Note, []byte("\n\n"))+1]
	for _, line := range bytes.SplitAfter(answer, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\n")) {
			line = append(line, '\n')
		}
		signed := append(append(slices.Clone(text), '\n'), line...)
		if n, err := note.Open(signed, note.VerifierList(v)); err == nil && len(n.Sigs) == 1 {
			return line, nil
		}
	}
	return nil, fmt.Errorf("its answer holds no valid cosignature of this checkpoint by its key %s", v.Name())
}

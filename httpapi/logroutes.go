package httpapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/client"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/tree"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ledger.Checkpoint().Note == nil {
		s.fail(w, r, &Error{Status: http.StatusServiceUnavailable, Msg: "this read replica has no checkpoint of its primary yet; retry shortly"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	cp := s.cfg.Ledger.Checkpoint()
	if s.cfg.Witnessed != nil {
		// The checkpoint with its witnesses' cosignatures, once they
		// answered for it; the header says whether they make a quorum.
		c := s.cfg.Witnessed()
		if c.Size == cp.Size && c.Note != nil && bytes.HasPrefix(c.Note, cp.Note) {
			w.Header().Set("Witness-Quorum", map[bool]string{true: "met", false: "not met"}[c.Quorum])
			w.Header().Set("Witness-Cosignatures", strconv.Itoa(len(c.Signed)))
			w.Write(c.Note)
			return
		}
		w.Header().Set("Witness-Quorum", "not yet asked")
		w.Header().Set("Witness-Cosignatures", "0")
	}
	w.Write(cp.Note)
}

// witnessedCheckpoint serves the newest checkpoint whose witnesses'
// cosignatures make a quorum of the server's witness policy (it may be
// older than /checkpoint).
func (s *Server) witnessedCheckpoint(w http.ResponseWriter, r *http.Request) {
	if s.cfg.WitnessedQuorum == nil {
		if s.cfg.Primary != "" {
			s.fail(w, r, fmt.Errorf("a read replica serves no witnessed checkpoints; ask its primary, %s: %w", s.cfg.Primary, ledger.ErrNotFound))
			return
		}
		s.fail(w, r, fmt.Errorf("this server asks no witnesses (ledger serve --witness-policy): %w", ledger.ErrNotFound))
		return
	}
	c := s.cfg.WitnessedQuorum()
	if c.Note == nil {
		s.fail(w, r, &Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second, Msg: "no checkpoint has a quorum of witness cosignatures yet; retry shortly"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(c.Note)
}

func (s *Server) logKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, s.cfg.VKey)
}

// immutable marks a response that never changes (full tiles and bundles,
// events): clients and caches may keep it forever.
func immutable(w http.ResponseWriter, partial bool) {
	if partial {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
}

// tileSource is a C2SP tlog-tiles log: the ledger's event log, or its
// attestation log.
type tileSource interface {
	Tile(level uint8, index uint64, width int) ([]byte, error)
	EntryBundle(n uint64, width int) ([]byte, error)
	Size() uint64
}

// eventLog is the ledger's event log as a tileSource.
type eventLog struct{ l *ledger.Ledger }

func (e eventLog) Tile(level uint8, index uint64, width int) ([]byte, error) {
	return e.l.Tree().Tile(level, index, width)
}
func (e eventLog) EntryBundle(n uint64, width int) ([]byte, error) { return e.l.EntryBundle(n, width) }
func (e eventLog) Size() uint64                                    { return e.l.Size() }

// tile serves a hash tile of src (nil: no such log here).
func (s *Server) tile(src func() tileSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log := src()
		if log == nil {
			s.fail(w, r, fmt.Errorf("this server keeps no attestation log: %w", ledger.ErrNotFound))
			return
		}
		v := mux.Vars(r)
		level, index, p, err := layout.ParseTileLevelIndexPartial(v["level"], v["n"])
		if err != nil || level > 7 {
			s.fail(w, r, badRequest("bad tile path %q: want .../tile/<L>/<N>[.p/<W>] as in C2SP tlog-tiles", r.URL.Path))
			return
		}
		width := int(p)
		if p == 0 {
			width = tree.TileWidth
		}
		data, err := log.Tile(uint8(level), index, width)
		if errorsIsRange(err) {
			s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("tile %s does not exist (yet) in the tree of size %d", r.URL.Path, log.Size()), Err: err})
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		immutable(w, p != 0)
		w.Write(data)
	}
}

// entryBundle serves an entry bundle of src (nil: no such log here).
func (s *Server) entryBundle(src func() tileSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log := src()
		if log == nil {
			s.fail(w, r, fmt.Errorf("this server keeps no attestation log: %w", ledger.ErrNotFound))
			return
		}
		index, p, err := layout.ParseTileIndexPartial(mux.Vars(r)["n"])
		if err != nil {
			s.fail(w, r, badRequest("bad entry bundle path %q: want .../tile/entries/<N>[.p/<W>] as in C2SP tlog-tiles", r.URL.Path))
			return
		}
		width := int(p)
		if p == 0 {
			width = tree.TileWidth
		}
		data, err := log.EntryBundle(index, width)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		immutable(w, p != 0)
		w.Write(data)
	}
}

func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	index, err := strconv.ParseUint(mux.Vars(r)["index"], 10, 64)
	if err != nil {
		s.fail(w, r, badRequest("bad event index %q", mux.Vars(r)["index"]))
		return
	}
	data, err := s.cfg.Ledger.EventBytes(index)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	immutable(w, false)
	w.Write(data)
}

// Proof is the JSON body of the proof routes.
type Proof struct {
	Index    uint64   `json:"index,omitempty"`
	LeafHash string   `json:"leaf_hash,omitempty"`
	From     uint64   `json:"from,omitempty"`
	Size     uint64   `json:"size"`
	Hashes   [][]byte `json:"hashes"` // base64, as in C2SP
}

func uintParam(r *http.Request, name string, def uint64) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("parameter %s=%q is not a non-negative integer", name, s)
	}
	return v, nil
}

// inclusionProof serves GET /proof/inclusion?index=I&size=S or
// ?leaf_hash=HEX&size=S (size defaults to the latest checkpoint's).
func (s *Server) inclusionProof(w http.ResponseWriter, r *http.Request) {
	size, err := uintParam(r, "size", s.cfg.Ledger.Checkpoint().Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	var p Proof
	switch {
	case q.Get("leaf_hash") != "":
		b, err := hex.DecodeString(q.Get("leaf_hash"))
		if err != nil || len(b) != 32 {
			s.fail(w, r, badRequest("leaf_hash must be 64 hex digits"))
			return
		}
		p.LeafHash = hex.EncodeToString(b)
		p.Index, p.Hashes, err = s.cfg.Ledger.Tree().InclusionProofByHash([32]byte(b), size)
		if err != nil {
			s.fail(w, r, proofError(err))
			return
		}
	case q.Get("index") != "":
		if p.Index, err = uintParam(r, "index", 0); err != nil {
			s.fail(w, r, err)
			return
		}
		if p.Hashes, err = s.cfg.Ledger.Tree().InclusionProof(p.Index, size); err != nil {
			s.fail(w, r, proofError(err))
			return
		}
	default:
		s.fail(w, r, badRequest("give index=N or leaf_hash=HEX (and optionally size=S)"))
		return
	}
	p.Size = size
	writeJSON(w, http.StatusOK, p)
}

// consistencyProof serves GET /proof/consistency?from=A&to=B.
func (s *Server) consistencyProof(w http.ResponseWriter, r *http.Request) {
	to, err := uintParam(r, "to", s.cfg.Ledger.Checkpoint().Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	from, err := uintParam(r, "from", 0)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hashes, err := s.cfg.Ledger.Tree().ConsistencyProof(from, to)
	if err != nil {
		s.fail(w, r, proofError(err))
		return
	}
	writeJSON(w, http.StatusOK, Proof{From: from, Size: to, Hashes: hashes})
}

func proofError(err error) error {
	if errorsIsRange(err) {
		return &Error{Status: http.StatusBadRequest, Msg: err.Error(), Err: err}
	}
	return err
}

// blob serves any blob of the content-addressed store by its SHA-256:
// events, artifacts, scripts, consoles, attestation envelopes — everything
// the log refers to, all of it public. Read replicas fetch what they lack
// here.
func (s *Server) blob(w http.ResponseWriter, r *http.Request) {
	d, err := cas.ParseDigest(mux.Vars(r)["sha256"])
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	if ok, err := s.cfg.Ledger.Store().Has(d); err != nil {
		s.fail(w, r, err)
		return
	} else if !ok {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no blob with SHA-256 " + d.String()})
		return
	}
	s.serveBlob(w, r, d, "application/octet-stream")
}

// blobs serves small blobs in one answer (GET /blobs?sha256=HEX,HEX,...;
// at most client.MaxBatchDigests): one frame per digest, in order, as
// package client describes. A replica fetching the files of thousands of
// builds makes one request per batch instead of one per file. Each blob
// is read and written on its own, so the answer holds at most one blob
// (client.MaxBatchBlob) in memory.
func (s *Server) blobs(w http.ResponseWriter, r *http.Request) {
	list := r.URL.Query().Get("sha256")
	if list == "" {
		s.fail(w, r, badRequest("give the digests as /blobs?sha256=HEX,HEX,... (at most %d)", client.MaxBatchDigests))
		return
	}
	parts := strings.Split(list, ",")
	if len(parts) > client.MaxBatchDigests {
		s.fail(w, r, badRequest("%d digests; a batch names at most %d", len(parts), client.MaxBatchDigests))
		return
	}
	ds := make([]cas.Digest, len(parts))
	for i, p := range parts {
		d, err := cas.ParseDigest(p)
		if err != nil {
			s.fail(w, r, badRequest("digest %d (%q): %v", i+1, p, err))
			return
		}
		ds[i] = d
	}
	store := s.cfg.Ledger.Store()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, d := range ds {
		var head [41]byte
		copy(head[:32], d[:])
		info, err := store.Stat(d)
		var b []byte
		switch {
		case errors.Is(err, cas.ErrNotFound):
			head[32] = client.BlobAbsent
		case err != nil:
			// Headers are sent: a truncated answer, never a wrong one.
			s.cfg.Logger.Error("batch blob read failed", "blob", d, "err", err)
			panic(http.ErrAbortHandler)
		case info.Size > client.MaxBatchBlob:
			head[32] = client.BlobTooLarge
			binary.BigEndian.PutUint64(head[33:], uint64(info.Size))
		default:
			if b, err = store.Bytes(r.Context(), d, client.MaxBatchBlob); err != nil {
				s.cfg.Logger.Error("batch blob read failed", "blob", d, "err", err)
				panic(http.ErrAbortHandler)
			}
			binary.BigEndian.PutUint64(head[33:], uint64(len(b)))
		}
		bw.Write(head[:])
		if _, err := bw.Write(b); err != nil {
			return // the client went away
		}
	}
	bw.Flush()
}

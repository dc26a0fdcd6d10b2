package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/buildledger/buildledger/ledger"
)

// logPageSize is how many entries the log page lists.
const logPageSize = 50

// logEntry is a row of the log page.
type logEntry struct {
	Index    uint64
	Kind     string
	Summary  string
	Href     string // the page of what it records
	LeafHash string // hex
}

// logPage is the log page: the checkpoint this server signed last, and a
// page of entries, newest first (or from ?start=N down).
type logPage struct {
	Checkpoint string
	Size       uint64
	Key        string
	Entries    []logEntry
	Newer      string // link to newer entries, "" at the head
	Older      string // link to older entries, "" at entry 0
}

// logView answers GET /log (HTML only; the log's machine interfaces are
// /checkpoint, /tile/ and /event/N).
func (s *Server) logView(w http.ResponseWriter, r *http.Request) {
	cp := s.cfg.Ledger.Checkpoint()
	p := logPage{Checkpoint: string(cp.Note), Size: cp.Size, Key: s.cfg.VKey}
	if cp.Size == 0 {
		s.renderHTML(w, r, "log", p)
		return
	}
	top := cp.Size - 1
	if q := r.URL.Query().Get("start"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil || n > top {
			s.fail(w, r, badRequest("start=%q: give a log index from 0 to %d", q, top))
			return
		}
		top = n
	}
	for i := top; ; i-- {
		data, err := s.cfg.Ledger.EventBytes(i)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ev, err := s.cfg.Ledger.Event(i)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h := leafHash(data)
		e := logEntry{Index: i, Kind: string(ev.Kind()), LeafHash: fmt.Sprintf("%x", h[:])}
		switch x := ev.(type) {
		case *ledger.JobDefined:
			e.Summary, e.Href = "job "+x.Job, "/job/"+x.Job
		case *ledger.BuildRecorded:
			e.Summary, e.Href = fmt.Sprintf("build %s of %s on %s: %s", x.UUID, x.Job, x.Platform, x.Result), "/job/"+x.Job+"/build/"+x.UUID.String()
		case *ledger.KeyAdded:
			e.Summary, e.Href = fmt.Sprintf("key %s (%s) added", x.Name, x.KeyID), "/keys"
		case *ledger.KeyRevoked:
			e.Summary, e.Href = fmt.Sprintf("key %s revoked", x.KeyID), "/keys"
		case *ledger.AttestationRecorded:
			e.Summary, e.Href = fmt.Sprintf("attestation (%s) by key %s", x.Verdict, x.KeyID.String()[:16]), envelopeURL(x.Envelope)
			if x.Build != nil {
				e.Summary += " of build " + x.Build.String()
			}
		}
		p.Entries = append(p.Entries, e)
		if i == 0 || len(p.Entries) == logPageSize {
			break
		}
	}
	if top+1 < cp.Size {
		p.Newer = fmt.Sprintf("/log?start=%d", min(top+logPageSize, cp.Size-1))
	}
	if last := p.Entries[len(p.Entries)-1].Index; last > 0 {
		p.Older = fmt.Sprintf("/log?start=%d", last-1)
	}
	s.renderHTML(w, r, "log", p)
}

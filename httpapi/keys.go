package httpapi

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/ledger"
	"github.com/gorilla/mux"
)

func keyInfo(k ledger.RegisteredKey) KeyInfo {
	ki := KeyInfo{Name: k.Name, KeyID: k.KeyID, Algorithm: k.Algorithm, Status: k.Status, AddedAt: k.AddedAt, PublicKey: publicKeyPEM(k.PublicKey)}
	if k.Status == ledger.KeyStatusRevoked {
		at := k.RevokedAt
		ki.RevokedAt = &at
	}
	return ki
}

// listKeys answers GET /keys: every key ever registered.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Ledger.Keys()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Checkpoint string    `json:"checkpoint"`
		Keys       []KeyInfo `json:"keys"`
	}{string(s.cfg.Ledger.Checkpoint().Note), []KeyInfo{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyInfo(k))
	}
	s.render(w, r, "keys", out)
}

// admin checks that the request carries an administrator's credentials.
func (s *Server) admin(r *http.Request) error {
	if s.cfg.Users == nil {
		return &Error{Status: http.StatusForbidden, Msg: "key management is disabled on this server (it has no accounts)"}
	}
	u, err := s.login(r)
	if err != nil {
		return err
	}
	if !u.Admin {
		return &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("user %q is not an administrator; keys are managed by accounts made with 'ledger user add NAME --admin'", u.Name)}
	}
	return nil
}

func (s *Server) readKeyRequest(w http.ResponseWriter, r *http.Request) (KeyRequest, error) {
	var req KeyRequest
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return req, &Error{Status: http.StatusRequestEntityTooLarge, Msg: "key requests are at most 64 KiB"}
	}
	if err != nil {
		return req, badRequest("reading the request: %v", err)
	}
	if err := decodeStrictJSON(b, &req); err != nil {
		return req, badRequest("the body must be a JSON object {\"public_key\": PEM} or {\"reason\": TEXT}: %v", err)
	}
	return req, nil
}

// adminKeyRequest authenticates an administrator and reads the key
// request, answering the failure itself.
func (s *Server) adminKeyRequest(w http.ResponseWriter, r *http.Request) (KeyRequest, bool) {
	err := s.admin(r)
	var req KeyRequest
	if err == nil {
		req, err = s.readKeyRequest(w, r)
	}
	if err != nil {
		s.fail(w, r, err)
		return req, false
	}
	return req, true
}

// addKey answers POST /keys/{name}: an administrator registers a
// rebuilder's public key under name.
func (s *Server) addKey(w http.ResponseWriter, r *http.Request) {
	req, ok := s.adminKeyRequest(w, r)
	if !ok {
		return
	}
	v, err := attest.LoadVerifier([]byte(req.PublicKey))
	if err != nil {
		s.fail(w, r, badRequest("public_key: %v", strings.TrimPrefix(err.Error(), "attest: ")))
		return
	}
	s.appendKeyEvent(w, r, &ledger.KeyAdded{Name: mux.Vars(r)["name"], PublicKey: v.PublicKeyDER()})
}

// revokeKey answers POST /keys/{name}/revoke.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	req, ok := s.adminKeyRequest(w, r)
	if !ok {
		return
	}
	name := mux.Vars(r)["name"]
	st, err := s.cfg.Ledger.KeyByName(name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.appendKeyEvent(w, r, &ledger.KeyRevoked{KeyID: st.KeyID, Reason: req.Reason})
}

func (s *Server) appendKeyEvent(w http.ResponseWriter, r *http.Request, ev ledger.Event) {
	rc, err := s.cfg.Ledger.Append(r.Context(), ev)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.cfg.Ledger.Tree().InclusionProof(rc.Index, rc.Checkpoint.Size)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	logged, err := s.cfg.Ledger.Event(rc.Index) // as normalised by the ledger
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var id cas.Digest
	switch e := logged.(type) {
	case *ledger.KeyAdded:
		id = e.KeyID
	case *ledger.KeyRevoked:
		id = e.KeyID
	}
	keys, err := s.cfg.Ledger.Keys()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Key        KeyInfo  `json:"key"`
		LogIndex   uint64   `json:"log_index"`
		LeafHash   []byte   `json:"leaf_hash"`
		Checkpoint string   `json:"checkpoint"`
		Inclusion  [][]byte `json:"inclusion_proof"`
	}{LogIndex: rc.Index, LeafHash: rc.LeafHash[:], Checkpoint: string(rc.Checkpoint.Note), Inclusion: p}
	for _, k := range keys {
		if k.KeyID == id {
			out.Key = keyInfo(k)
		}
	}
	writeJSON(w, http.StatusCreated, out)
}

// decodeStrictJSON decodes one JSON value with no unknown fields and
// nothing after it.
func decodeStrictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

func publicKeyPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

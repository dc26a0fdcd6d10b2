package api

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// AppendJSON appends h as encoding/json would write it (byte for byte:
// FuzzHashLookupJSON compares the two), without reflection: the reverse
// lookup is the API's hottest answer. checkpoint, when not nil, is the
// JSON string encoding of h.Checkpoint, which a server encodes once per
// checkpoint rather than once per answer.
func (h *HashLookup) AppendJSON(b []byte, checkpoint []byte) ([]byte, error) {
	b = append(b, `{"sha256":"`...)
	b = hex.AppendEncode(b, h.SHA256[:])
	b = append(b, `","builds":`...)
	if h.Builds == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range h.Builds {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = h.Builds[i].appendJSON(b); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	var err error
	b = append(b, `,"attestations":`...)
	if b, err = appendList(b, h.Attestations); err != nil {
		return nil, err
	}
	b = append(b, `,"disputes":`...)
	if b, err = appendList(b, h.Disputes); err != nil {
		return nil, err
	}
	b = append(b, `,"checkpoint":`...)
	if checkpoint != nil {
		b = append(b, checkpoint...)
	} else {
		b = appendString(b, h.Checkpoint)
	}
	if h.Next != nil {
		b = append(b, `,"next":`...)
		b = strconv.AppendUint(b, *h.Next, 10)
	}
	return append(b, '}'), nil
}

func (x *HashHit) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"job":`...)
	b = appendString(b, x.Job)
	b = append(b, `,"uuid":"`...)
	b = append(b, x.UUID.String()...)
	b = append(b, `","platform":`...)
	b = appendString(b, x.Platform)
	b = append(b, `,"started":`...)
	b, err := appendTime(b, x.Started)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"finished":`...)
	if b, err = appendTime(b, x.Finished); err != nil {
		return nil, err
	}
	b = append(b, `,"log_index":`...)
	b = strconv.AppendUint(b, x.LogIndex, 10)
	b = append(b, `,"path":`...)
	b = appendString(b, x.Path)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, x.Size, 10)
	b = append(b, `,"main_binary":`...)
	b = strconv.AppendBool(b, x.MainBinary)
	return append(b, '}'), nil
}

// appendTime writes t as time.Time's MarshalJSON does. Times other than
// UTC ones in years 0 to 9999 (the log's are) go through MarshalJSON,
// which refuses some of them.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if _, off := t.Zone(); off != 0 || t.Year() < 0 || t.Year() > 9999 {
		return appendMarshal(b, t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendString writes s as encoding/json does: as it is when it has
// nothing to escape, else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return mustAppendMarshal(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendList writes a list of attestations: empty ones directly, others
// through encoding/json (they are rare, and many-sided).
func appendList(b []byte, l []AttestationInfo) ([]byte, error) {
	switch {
	case l == nil:
		return append(b, "null"...), nil
	case len(l) == 0:
		return append(b, "[]"...), nil
	}
	return appendMarshal(b, l)
}

func appendMarshal(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// mustAppendMarshal is appendMarshal for a string, which encoding/json
// always encodes.
func mustAppendMarshal(b []byte, s string) []byte {
	j, _ := json.Marshal(s)
	return append(b, j...)
}

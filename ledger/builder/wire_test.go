package builder

import (
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// This file builds exec records with golang.org/x/crypto/cryptobyte,
// following builder's ASN.1 (see doc.go) field by field. It shares no code
// with Marshal, so the golden tests compare two independent encoders, and it
// can write what Marshal refuses to (bad paths, odd times, extra fields), for
// the negative tests.

var (
	tagExp0 = asn1.Tag(0).ContextSpecific().Constructed() // 0xa0
)

func explicit(n int) asn1.Tag { return asn1.Tag(n).ContextSpecific().Constructed() }

type wfile struct {
	path string
	data []byte
	tag  asn1.Tag // of data; 0 means UTF8String
}

type wline struct {
	delta int64
	data  string
}

type wtime struct {
	tag asn1.Tag // asn1.UTCTime or asn1.GeneralizedTime
	s   string
}

// wire is an exec record as it travels, every field under the test's control.
type wire struct {
	outer    asn1.Tag // 0 means [0]
	name     string
	script   string
	jobFiles []wfile
	platform *string // nil: absent
	uuid     []byte
	console  []wline // wire order: newest first
	started  wtime
	finished wtime
	result   int    // CHOICE alternative 0..3 (or anything, for negative tests)
	code     int64  // for results 0..2
	rawCode  []byte // if set, the INTEGER contents octets instead of code
	msg      string // for result 3
	output   []wfile
	extra    []byte // raw bytes appended inside the exec SEQUENCE
}

func str(s string) *string { return &s }

func addFiles(b *cryptobyte.Builder, files []wfile) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, f := range files {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(f.path)) })
				tag := f.tag
				if tag == 0 {
					tag = asn1.UTF8String
				}
				b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(f.data) })
			})
		}
	})
}

func (w wire) der() []byte {
	outer := w.outer
	if outer == 0 {
		outer = tagExp0
	}
	var b cryptobyte.Builder
	b.AddASN1(outer, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			// job SEQUENCE { name, script, files, platform OPTIONAL }
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(w.name)) })
				b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(w.script)) })
				addFiles(b, w.jobFiles)
				if w.platform != nil {
					b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(*w.platform)) })
				}
			})
			// uuid UTF8String holding 16 raw bytes
			b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes(w.uuid) })
			// console SEQUENCE OF SEQUENCE { delta INTEGER, data UTF8String }
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, l := range w.console {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(l.delta)
						b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.data)) })
					})
				}
			})
			// timestamps SEQUENCE { started, finished }
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, t := range []wtime{w.started, w.finished} {
					b.AddASN1(t.tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(t.s)) })
				}
			})
			// result CHOICE { [0] INTEGER, [1] INTEGER, [2] INTEGER, [3] UTF8String }
			b.AddASN1(explicit(w.result), func(b *cryptobyte.Builder) {
				switch {
				case w.result == 3:
					b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(w.msg)) })
				case w.rawCode != nil:
					b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(w.rawCode) })
				default:
					b.AddASN1Int64(w.code)
				}
			})
			// output SEQUENCE OF SEQUENCE { path, data }
			addFiles(b, w.output)
			b.AddBytes(w.extra)
		})
	})
	return b.BytesOrPanic()
}

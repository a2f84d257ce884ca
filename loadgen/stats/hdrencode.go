package stats

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"math"
	"sync"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// encodeHDR writes h in the HdrHistogram V2 compressed encoding (base64), as h.Encode does and
// every HdrHistogram library reads (hdrhistogram.Decode here), but through a pooled zlib writer at
// best speed: the library's encoder allocates a new writer at best compression for each call,
// about a megabyte of tables, which made encoding a worker's histograms each second its largest
// allocation and its largest burst of CPU. The payload is the same; only the deflate stream differs.
func encodeHDR(h *hdrhistogram.Histogram) ([]byte, error) {
	snap := h.Export()
	counts := snap.Counts
	last := len(counts) - 1
	for last >= 0 && counts[last] == 0 {
		last--
	}
	e := encoders.Get().(*hdrEncoder)
	defer encoders.Put(e)

	// The V2 payload: zigzag LEB128 counts, a run of zeros as one negative number.
	e.counts = e.counts[:0]
	for i := 0; i <= last; {
		if counts[i] != 0 {
			e.counts = appendZigZag(e.counts, counts[i])
			i++
			continue
		}
		j := i
		for j <= last && counts[j] == 0 {
			j++
		}
		if j-i > 1 {
			e.counts = appendZigZag(e.counts, -int64(j-i))
		} else {
			e.counts = appendZigZag(e.counts, 0)
		}
		i = j
	}
	ratio := snap.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1
	}
	e.plain.Reset()
	be := binary.BigEndian
	var hdr [40]byte
	be.PutUint32(hdr[0:], uint32(v2EncodingCookie))
	be.PutUint32(hdr[4:], uint32(len(e.counts)))
	be.PutUint32(hdr[8:], 0) // normalizing index offset: counts are stored unrotated
	be.PutUint32(hdr[12:], uint32(snap.SignificantFigures))
	be.PutUint64(hdr[16:], uint64(snap.LowestTrackableValue))
	be.PutUint64(hdr[24:], uint64(snap.HighestTrackableValue))
	be.PutUint64(hdr[32:], math.Float64bits(ratio))
	e.plain.Write(hdr[:])
	e.plain.Write(e.counts)

	e.deflated.Reset()
	var head [8]byte
	be.PutUint32(head[0:], uint32(v2CompressedEncodingCookie))
	e.deflated.Write(head[:]) // the length is filled in below
	if e.zw == nil {
		zw, err := zlib.NewWriterLevel(&e.deflated, zlib.BestSpeed)
		if err != nil {
			return nil, err
		}
		e.zw = zw
	} else {
		e.zw.Reset(&e.deflated)
	}
	if _, err := e.zw.Write(e.plain.Bytes()); err != nil {
		return nil, err
	}
	if err := e.zw.Close(); err != nil {
		return nil, err
	}
	raw := e.deflated.Bytes()
	be.PutUint32(raw[4:], uint32(len(raw)-8))
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	return out, nil
}

// The V2 cookies (hdrhistogram's V2EncodingCookieBase and V2CompressedEncodingCookieBase with the
// word size 8 that Java and Go write in their low bits).
const (
	v2EncodingCookie           = hdrhistogram.V2EncodingCookieBase | 0x10
	v2CompressedEncodingCookie = hdrhistogram.V2CompressedEncodingCookieBase | 0x10
)

// hdrEncoder is the reusable state of one encoding.
type hdrEncoder struct {
	counts   []byte
	plain    bytes.Buffer
	deflated bytes.Buffer
	zw       *zlib.Writer
}

var encoders = sync.Pool{New: func() any { return new(hdrEncoder) }}

// appendZigZag appends v as HdrHistogram's ZigZag LEB128-64b9B: seven bits a byte, low first, and
// a ninth byte holding the last eight bits whole.
func appendZigZag(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for i := 0; i < 8; i++ {
		if u>>7 == 0 {
			return append(b, byte(u))
		}
		b = append(b, byte(u&0x7f)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

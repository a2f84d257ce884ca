package stats

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/bits"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// encodeHDR writes h in the HdrHistogram V2 compressed encoding (base64), as h.Encode does and
// every HdrHistogram library reads (hdrhistogram.Decode here), but through a pooled zlib writer at
// best speed: the library's encoder allocates a new writer at best compression for each call,
// about a megabyte of tables, which made encoding a worker's histograms each second its largest
// allocation and its largest burst of CPU. The payload is the same; only the deflate stream differs.
func encodeHDR(h *hdrhistogram.Histogram) ([]byte, error) {
	snap := h.Export()
	return encodeBuckets(snap.SignificantFigures, snap.LowestTrackableValue, snap.HighestTrackableValue,
		snap.IntegerToDoubleConversionRatio, func(yield func(int32, int64) bool) {
			for i, c := range snap.Counts {
				if c != 0 && !yield(int32(i), c) {
					return
				}
			}
		})
}

// encodePacked is encodeHDR for a sparse histogram of the Recorder's geometry (newPacked): the
// same bytes as encodeHDR of a dense histogram holding the same values, written from the
// populated buckets alone (no dense counts array is made).
func encodePacked(p *hdrhistogram.PackedHistogram) ([]byte, error) {
	return encodeBuckets(histSigFigs, histLowest, histHighest, 1, func(yield func(int32, int64) bool) {
		for v, c := range p.ForEachBucket {
			if !yield(countsIndex(v), c) {
				return
			}
		}
	})
}

// encodeBuckets writes the V2 compressed encoding of the histogram of the given geometry whose
// populated buckets buckets yields as (counts index, count), indexes ascending.
func encodeBuckets(sigFigs, lowest, highest int64, ratio float64, buckets func(yield func(int32, int64) bool)) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)

	// The V2 payload: zigzag LEB128 counts up to the last populated bucket, a run of zeros as one
	// negative number (a single zero as itself).
	e.counts = e.counts[:0]
	prev := int32(-1)
	for i, c := range buckets {
		switch gap := i - prev - 1; {
		case gap == 1:
			e.counts = appendZigZag(e.counts, 0)
		case gap > 1:
			e.counts = appendZigZag(e.counts, -int64(gap))
		}
		e.counts = appendZigZag(e.counts, c)
		prev = i
	}
	if ratio == 0 {
		ratio = 1
	}
	e.plain.Reset()
	be := binary.BigEndian
	var hdr [40]byte
	be.PutUint32(hdr[0:], uint32(v2EncodingCookie))
	be.PutUint32(hdr[4:], uint32(len(e.counts)))
	be.PutUint32(hdr[8:], 0) // normalizing index offset: counts are stored unrotated
	be.PutUint32(hdr[12:], uint32(sigFigs))
	be.PutUint64(hdr[16:], uint64(lowest))
	be.PutUint64(hdr[24:], uint64(highest))
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

// The Recorder's geometry (histLowest 1, histSigFigs 3) as HdrHistogram lays out its counts:
// 2 048 sub-buckets (the smallest power of two that holds 2×10^3 at unit resolution), bucket 0
// whole and each further bucket its upper half, twice as wide.
const (
	subBucketHalfCountMagnitude = 10
	subBucketHalfCount          = 1 << subBucketHalfCountMagnitude
	subBucketMask               = 2*subBucketHalfCount - 1
)

// countsIndex is the index of v's bucket in the counts array of a histogram of the Recorder's
// geometry (hdrhistogram's countsIndexFor, which it does not export; TestCountsIndex holds the
// two together).
func countsIndex(v int64) int32 {
	bucket := int32(64-bits.LeadingZeros64(uint64(v|subBucketMask))) - (subBucketHalfCountMagnitude + 1)
	sub := int32(v >> uint(bucket))
	return (bucket+1)<<subBucketHalfCountMagnitude + sub - subBucketHalfCount
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

// encoders keeps a few idle encoders. Not a sync.Pool: a pool is emptied by the garbage collector,
// which on a busy worker runs more often than the histograms are encoded (once a second), so each
// encoding made its zlib writer (hundreds of kilobytes of tables) anew.
var encoders = make(chan *hdrEncoder, 4)

func getEncoder() *hdrEncoder {
	select {
	case e := <-encoders:
		return e
	default:
		return new(hdrEncoder)
	}
}

func putEncoder(e *hdrEncoder) {
	select {
	case encoders <- e:
	default:
	}
}

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

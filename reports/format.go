package reports

import (
	"math"
	"strconv"
	"time"
)

// Units of SLO values (SLOVerdict.Unit): the base unit of a metric's values.
const (
	UnitSeconds     = "seconds"       // durations
	UnitCount       = "count"         // plain numbers
	UnitBytes       = "bytes"         // sizes
	UnitPerSecond   = "per_second"    // rates of events
	UnitBytesPerSec = "bytes_per_sec" // growth of a size
)

// FormatValue renders v (in the base unit unit) for people: durations as Go durations rounded to
// three significant digits, bytes with binary prefixes, counts as integers where whole. An unknown
// unit (a schema 1 verdict's) renders as a plain number.
func FormatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	if math.IsInf(v, 1) && unit == UnitSeconds {
		return "never" // e.g. a recovery that did not happen
	}
	if math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	switch unit {
	case UnitSeconds:
		return FormatDuration(time.Duration(v * float64(time.Second)))
	case UnitBytes:
		return formatBytes(v)
	case UnitBytesPerSec:
		return formatBytes(v) + "/s"
	case UnitPerSecond:
		return formatNumber(v) + "/s"
	}
	return formatNumber(v)
}

// FormatDuration rounds d to three significant digits ("0s" for zero).
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	abs := d
	if abs < 0 {
		abs = -abs
	}
	unit := time.Duration(1)
	for abs/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit).String()
}

func formatNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return sig3(v)
}

func formatBytes(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs >= 1<<30:
		return sig3(v/(1<<30)) + "GiB"
	case abs >= 1<<20:
		return sig3(v/(1<<20)) + "MiB"
	case abs >= 1<<10:
		return sig3(v/(1<<10)) + "KiB"
	}
	return formatNumber(v) + "B"
}

// sig3 renders v with three significant digits, without an exponent from 1000 up (1000, not 1e+03).
func sig3(v float64) string {
	if math.Abs(v) >= 1000 && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

//go:build race

package protocol

// raceEnabled is set when the tests run under the race detector, whose sync.Pool drops pooled items
// at random, so allocation counts do not hold.
const raceEnabled = true

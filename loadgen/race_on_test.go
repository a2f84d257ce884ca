//go:build race

package loadgen

// raceEnabled is set when the tests run under the race detector, which slows the generator and the
// in-process gateway several times: heavy tests lighten their load.
const raceEnabled = true

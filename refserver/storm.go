package refserver

import (
	"sync"
	"time"
)

// stormSlot is the resolution of the storm detector's sliding windows.
const stormSlot = 100 * time.Millisecond

// stormQuiet is how long the alert conditions must stay false before a storm counts as over (so that
// one storm raises one alert, not one per gap between waves).
const stormQuiet = 2 * time.Second

// stormDetector implements the seeds' reconnect storm alert: a storm is on while connection attempts
// exceed burst within one second, or average more than rate per second over window; it is over once
// the conditions are false and stormQuiet has passed since the last attempt that found them true. It
// only raises ws_storm_active, counts ws_storms_total and logs once per storm (Warn at the start; an
// Info summary when the end is noticed); it never refuses anyone. Attempts are counted in 100 ms
// slots of a ring covering the window. It has no goroutine: a storm starts on an attempt, and its end
// is noticed by the next evaluation (an attempt, a /metrics scrape, Stats). Safe for concurrent use.
type stormDetector struct {
	rate   float64
	burst  int
	window time.Duration
	now    func() time.Time
	onRise func(perSecond int, avg float64)                     // a storm started
	onFall func(d time.Duration, attempts uint64, at time.Time) // a storm ended at

	mu       sync.Mutex
	slots    []int // attempts per slot, ring
	head     int64 // absolute slot number of the newest slot
	inWindow int   // sum of slots
	active   bool  // a storm is on
	since    time.Time
	lastHot  time.Time // the last attempt that found the alert conditions true
	attempts uint64    // attempts during the current storm
}

func newStormDetector(rate float64, burst int, window time.Duration, now func() time.Time) *stormDetector {
	if now == nil {
		now = time.Now
	}
	n := int(max(window, time.Second) / stormSlot)
	return &stormDetector{rate: rate, burst: burst, window: time.Duration(n) * stormSlot, now: now,
		slots: make([]int, n), onRise: func(int, float64) {}, onFall: func(time.Duration, uint64, time.Time) {}}
}

// observe counts one connection attempt.
func (d *stormDetector) observe() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.advanceLocked(now)
	d.slots[int(d.head%int64(len(d.slots)))]++
	d.inWindow++
	if d.active {
		d.attempts++
	}
	d.evalLocked(now, true)
}

// advanceLocked moves the ring to the slot of now, emptying the slots it passes.
func (d *stormDetector) advanceLocked(now time.Time) {
	slot := now.UnixNano() / int64(stormSlot)
	if slot <= d.head {
		return
	}
	n := int64(len(d.slots))
	if slot-d.head >= n {
		clear(d.slots)
		d.inWindow = 0
	} else {
		for s := d.head + 1; s <= slot; s++ {
			i := int(s % n)
			d.inWindow -= d.slots[i]
			d.slots[i] = 0
		}
	}
	d.head = slot
}

// lastSecondLocked sums the slots of the last second (the current slot included).
func (d *stormDetector) lastSecondLocked() int {
	n := int64(len(d.slots))
	k := int64(time.Second / stormSlot)
	sum := 0
	for s := d.head - k + 1; s <= d.head; s++ {
		sum += d.slots[int(((s%n)+n)%n)]
	}
	return sum
}

// evalLocked applies the alert conditions at now; attempt says an attempt is being counted.
func (d *stormDetector) evalLocked(now time.Time, attempt bool) {
	perSecond := d.lastSecondLocked()
	avg := float64(d.inWindow) / d.window.Seconds()
	hot := perSecond > d.burst || avg > d.rate
	if hot && attempt {
		d.lastHot = now
	}
	switch {
	case hot && !d.active:
		d.active, d.since, d.attempts = true, now, uint64(perSecond)
		d.onRise(perSecond, avg)
	case !hot && d.active && now.Sub(d.lastHot) >= stormQuiet:
		d.active = false
		d.onFall(d.lastHot.Sub(d.since), d.attempts, d.lastHot.Add(stormQuiet))
	}
}

// isActive reports whether a storm is on, evaluated now.
func (d *stormDetector) isActive() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.advanceLocked(now)
	d.evalLocked(now, false)
	return d.active
}

// newServerStorm builds the Server's detector: it counts ws_storms_total and logs the start (Warn,
// once per storm) and the end (Info) of each storm; ws_storm_active reads isActive.
func newServerStorm(s *Server) *stormDetector {
	d := newStormDetector(s.cfg.StormAlertRate, s.cfg.StormAlertBurst, s.cfg.StormAlertWindow, nil)
	d.onRise = func(perSecond int, avg float64) {
		s.metrics.stormsTotal.Inc()
		s.log.Warn("reconnect storm detected", "attempts_last_second", perSecond,
			"attempts_per_second_avg", avg, "alert_burst", s.cfg.StormAlertBurst,
			"alert_rate", s.cfg.StormAlertRate, "window", s.cfg.StormAlertWindow)
	}
	d.onFall = func(dur time.Duration, attempts uint64, at time.Time) {
		s.log.Info("reconnect storm over", "duration", dur, "attempts", attempts, "over_at", at)
	}
	return d
}

package refserver

import "sync"

// limits counts connections per node, per user id and per remote IP, and decides admission. Every
// acquired slot is released exactly once by the connection's cleanup. Safe for concurrent use.
type limits struct {
	maxConns  int
	maxPerKey int
	maxPerIP  int // -1: unlimited
	disabled  bool

	mu     sync.Mutex
	total  int
	byUser map[string]int
	byIP   map[string]int
}

func newLimits(cfg Config) *limits {
	return &limits{
		maxConns:  cfg.MaxConns,
		maxPerKey: cfg.MaxConnsPerClient,
		maxPerIP:  cfg.MaxConnsPerIP,
		disabled:  cfg.Flaws.Has(FlawNoConnLimit),
		byUser:    map[string]int{},
		byIP:      map[string]int{},
	}
}

// acquireNode takes a node slot and a per-IP slot. It returns false, false when the node is full and
// true, false when the IP is at its limit; in both cases nothing is held.
func (l *limits) acquireNode(ip string) (nodeOK, ipOK bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.disabled && l.total >= l.maxConns {
		return false, false
	}
	if !l.disabled && l.maxPerIP > 0 && l.byIP[ip] >= l.maxPerIP {
		return true, false
	}
	l.total++
	l.byIP[ip]++
	return true, true
}

// releaseNode returns what acquireNode took.
func (l *limits) releaseNode(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.byIP[ip] - 1; n > 0 {
		l.byIP[ip] = n
	} else {
		delete(l.byIP, ip)
	}
}

// acquireUser takes a per-user slot; false means the user is at the limit and nothing is held.
func (l *limits) acquireUser(user string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.disabled && l.byUser[user] >= l.maxPerKey {
		return false
	}
	l.byUser[user]++
	return true
}

func (l *limits) releaseUser(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.byUser[user] - 1; n > 0 {
		l.byUser[user] = n
	} else {
		delete(l.byUser, user)
	}
}

// full reports whether the node is at max-conns (HTTP 503 before the upgrade).
func (l *limits) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.disabled && l.total >= l.maxConns
}

func (l *limits) active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func (l *limits) usage() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return float64(l.total) / float64(l.maxConns)
}

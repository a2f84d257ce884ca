package refserver

import "sort"

// presence tracks which users are present in one room: a user is present while at least one of
// their connections is a member. Not safe for concurrent use: the room's lock guards it. In cluster mode
// these entries are mirrored into Redis keys with a TTL (presence_redis.go).
type presence struct {
	users map[string]int // user id → member connections
}

// add counts one more connection of user and reports whether the user just became present.
func (p *presence) add(user string) (first bool) {
	if p.users == nil {
		p.users = map[string]int{}
	}
	p.users[user]++
	return p.users[user] == 1
}

// remove counts one connection of user less and reports whether the user is no longer present.
func (p *presence) remove(user string) (last bool) {
	n, ok := p.users[user]
	if !ok {
		return false
	}
	if n <= 1 {
		delete(p.users, user)
		return true
	}
	p.users[user] = n - 1
	return false
}

// len returns the number of present users.
func (p *presence) len() int { return len(p.users) }

// list returns the present user ids, sorted.
func (p *presence) list() []string {
	out := make([]string, 0, len(p.users))
	for u := range p.users {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

package loadgen

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/internal/wstest"
	"github.com/squall-dev/squall/refserver/protocol"
)

// fakeGateway is a small gateway speaking the subset of the protocol the client tests need: welcome,
// join_room, broadcast (roomSeq, sentAt, ack), ping/pong, and resume answered with resume_failed.
// Tests drop its connections on purpose.
type fakeGateway struct {
	t   testing.TB
	srv *httptest.Server
	up  websocket.Upgrader

	mu     sync.Mutex
	conns  map[*fakeConn]struct{}
	rooms  map[string]*fakeRoom
	nextID int
	accept atomic.Int64 // connections accepted
	// onConnect, when set, decides what to do with a new connection: return a close code to close
	// it right after the upgrade (with reason), 0 to serve it. It is set after the server started,
	// and the clients' upgrades reach the server through system calls the race detector does not
	// see as synchronising (the poller's): hence the atomic.
	onConnect atomic.Pointer[func(n int64) (code int, reason string)]
	// dropAck, when set, makes the gateway ack broadcasts without delivering them (a lossy gateway).
	dropAck atomic.Bool
	// fault, when set, breaks delivery: "skip" (every 7th roomSeq reaches only its sender), "swap"
	// (every 5th is delivered after the next), "dupe" (every 5th is delivered twice).
	fault atomic.Value
	// resumeOK makes resume succeed (otherwise it is answered with resume_failed).
	resumeOK atomic.Bool
}

type fakeConn struct {
	ws    *websocket.Conn
	user  string
	wmu   sync.Mutex
	rooms map[string]bool
}

type fakeRoom struct {
	seq     uint64
	held    []byte // a broadcast held back by the swap fault
	members map[*fakeConn]bool
}

func newFakeGateway(t testing.TB) *fakeGateway {
	g := &fakeGateway{t: t, conns: map[*fakeConn]struct{}{}, rooms: map[string]*fakeRoom{}}
	g.up.ReadBufferSize, g.up.WriteBufferSize = 512, 1024
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(func() {
		g.dropAll()
		g.srv.Close()
	})
	return g
}

func (g *fakeGateway) target() Target {
	return Target{Endpoints: []Endpoint{{URL: "ws" + strings.TrimPrefix(g.srv.URL, "http") + protocol.PathWS}}}
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	user, err := protocol.VerifyToken([]byte(protocol.DevSecret), r.URL.Query().Get(protocol.TokenQueryParam), time.Now())
	if err != nil {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	ws, err := g.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	n := g.accept.Add(1)
	if onConnect := g.onConnect.Load(); onConnect != nil {
		if code, reason := (*onConnect)(n); code != 0 {
			if code == int(protocol.CloseAbnormal) {
				ws.NetConn().Close()
				return
			}
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
			ws.Close()
			return
		}
	}
	c := &fakeConn{ws: ws, user: user, rooms: map[string]bool{}}
	g.mu.Lock()
	g.conns[c] = struct{}{}
	g.nextID++
	id := g.nextID
	g.mu.Unlock()
	defer g.remove(c)
	c.send(&protocol.Frame{Type: protocol.TypeWelcome, Session: "s" + strconv.Itoa(id), ConnID: "c" + strconv.Itoa(id), UserID: user, HeartbeatInterval: 1000, HeartbeatTimeout: 2000})
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		f, err := protocol.Decode(b, protocol.ClientToServer)
		if err != nil {
			continue
		}
		switch f.Type {
		case protocol.TypeJoinRoom:
			g.mu.Lock()
			rm := g.rooms[f.RoomID]
			if rm == nil {
				rm = &fakeRoom{members: map[*fakeConn]bool{}}
				g.rooms[f.RoomID] = rm
			}
			rm.members[c] = true
			c.rooms[f.RoomID] = true
			head := rm.seq
			// Under the lock so that no broadcast of this room is sent to c before room_joined.
			c.send(&protocol.Frame{Type: protocol.TypeRoomJoined, RoomID: f.RoomID, HeadSeq: head})
			g.mu.Unlock()
			c.send(&protocol.Frame{Type: protocol.TypeAck, Seq: f.Seq})
		case protocol.TypeBroadcast:
			if !g.dropAck.Load() {
				g.mu.Lock()
				rm := g.rooms[f.RoomID]
				if rm != nil {
					rm.seq++
					out := &protocol.Frame{Type: protocol.TypeBroadcast, RoomID: f.RoomID, From: user, Data: f.Data, RoomSeq: rm.seq, SentAt: time.Now().UnixMilli()}
					b, _ := protocol.Encode(out)
					mode, _ := g.fault.Load().(string)
					switch {
					case mode == "skip" && rm.seq%7 == 0:
						// Deliver to the sender only: every other member misses it.
						c.sendRaw(b)
					case mode == "swap" && rm.seq%5 == 0:
						rm.held = b
					default:
						for m := range rm.members {
							m.sendRaw(b)
							if mode == "dupe" && rm.seq%5 == 0 {
								m.sendRaw(b)
							}
							if rm.held != nil {
								m.sendRaw(rm.held)
							}
						}
						rm.held = nil
					}
				}
				g.mu.Unlock()
			}
			c.send(&protocol.Frame{Type: protocol.TypeAck, Seq: f.Seq})
		case protocol.TypePing:
			c.send(&protocol.Frame{Type: protocol.TypePong, Timestamp: f.Timestamp})
		case protocol.TypeResume:
			if !g.resumeOK.Load() {
				c.send(&protocol.Frame{Type: protocol.TypeResumeFailed, Reason: "no history"})
				continue
			}
			// Continue the session: back into its rooms (nothing was sent meanwhile: no replay).
			g.mu.Lock()
			replayed := map[string]uint64{}
			for room := range f.Rooms {
				if rm := g.rooms[room]; rm != nil {
					rm.members[c] = true
					c.rooms[room] = true
					replayed[room] = 0
				}
			}
			g.mu.Unlock()
			c.send(&protocol.Frame{Type: protocol.TypeResumed, Rooms: replayed})
		}
	}
}

func (c *fakeConn) send(f *protocol.Frame) {
	b, _ := protocol.Encode(f)
	c.sendRaw(b)
}

func (c *fakeConn) sendRaw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

func (g *fakeGateway) remove(c *fakeConn) {
	g.mu.Lock()
	delete(g.conns, c)
	var leaves []*fakeConn
	for room := range c.rooms {
		rm := g.rooms[room]
		delete(rm.members, c)
		for m := range rm.members {
			if m.user != c.user {
				leaves = append(leaves, m)
			}
		}
		for _, m := range leaves {
			m.send(&protocol.Frame{Type: protocol.TypePresence, RoomID: room, Event: protocol.PresenceLeave, UserID: c.user, Reason: protocol.ReasonClosed})
		}
		leaves = leaves[:0]
	}
	g.mu.Unlock()
	c.ws.Close()
}

// open returns the number of open connections.
func (g *fakeGateway) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// dropAll closes every connection's TCP socket without a close frame (1006 at the client).
func (g *fakeGateway) dropAll() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		c.ws.NetConn().Close()
	}
	return len(g.conns)
}

var waitFor = wstest.WaitFor

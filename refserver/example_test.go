package refserver_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/refserver/protocol"
)

// A gateway in dev mode on a loopback port, and one client that authenticates with a token in the
// URL and joins a room.
func Example() {
	srv, err := refserver.New(refserver.Config{Dev: true}, nil)
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	token, _ := protocol.SignToken([]byte(protocol.DevSecret), "alice", time.Now().Add(time.Hour))
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+protocol.PathWS+"?token="+token, nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	read := func() protocol.Frame {
		_, b, err := ws.ReadMessage()
		if err != nil {
			panic(err)
		}
		f, err := protocol.Decode(b, protocol.ServerToClient)
		if err != nil {
			panic(err)
		}
		return f
	}
	welcome := read()
	fmt.Println(welcome.Type, welcome.UserID, welcome.HeartbeatInterval)

	join, _ := protocol.Encode(&protocol.Frame{Type: protocol.TypeJoinRoom, RoomID: "lobby", Seq: 1})
	_ = ws.WriteMessage(websocket.TextMessage, join)
	joined, ack := read(), read()
	fmt.Println(joined.Type, joined.RoomID, joined.Members, ack.Type, ack.Seq)
	fmt.Println(srv.Stats().Subscriptions)
	// Output:
	// welcome alice 30000
	// room_joined lobby [alice] ack 1
	// 1
}

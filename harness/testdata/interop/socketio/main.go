// Command socketio-server is a small Socket.IO v4 rooms relay on github.com/zishang520/socket.io,
// for the interop test of the socketio profile. It is its own module (its dependencies stay out
// of squall's go.mod); `make interop-deps` builds it into the interop cache.
//
//	subscribe(room)                 joins the room
//	publish(room, data) [ack]       emits message(room, data) to the room (the sender too), then acks
//
// Usage: socketio-server 127.0.0.1:PORT (answers on /socket.io/)
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: socketio-server HOST:PORT")
	}
	io := socket.NewServer(nil, nil)
	io.On("connection", func(clients ...any) {
		s := clients[0].(*socket.Socket)
		s.On("subscribe", func(args ...any) {
			if room, ok := args[0].(string); ok {
				s.Join(socket.Room(room))
			}
		})
		s.On("publish", func(args ...any) {
			if len(args) < 2 {
				return
			}
			room, ok := args[0].(string)
			if !ok {
				return
			}
			_ = io.To(socket.Room(room)).Emit("message", room, args[1])
			if ack, ok := args[len(args)-1].(socket.Ack); ok {
				ack([]any{"ok"}, nil)
			}
		})
	})
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io.ServeHandler(nil))
	log.Fatal(http.ListenAndServe(os.Args[1], mux))
}

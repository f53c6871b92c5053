"""Room chat: the room websocket (views), its session logic, writer, presence and rules."""

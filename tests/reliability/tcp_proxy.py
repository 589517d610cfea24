"""A TCP proxy of the test's own, to cut a worker off its database without touching the server."""

from __future__ import annotations

import socket
import threading
import time


class TcpProxy:
    """Forwards <bind>:<port> (127.0.0.1 unless `bind` says otherwise) to (host, target_port). `cut(seconds)` closes every open
    connection and refuses new ones for `seconds` (the listening socket is closed, so clients
    get "connection refused"), then listens again on the same port."""

    def __init__(self, host: str, target_port: int, *, bind: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.bind = bind
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> TcpProxy:
        self._listen()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closed = True
        self._drop_all()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.bind, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut() or __exit__
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _drop_all(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): close() alone does not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self, seconds: float) -> None:
        """Drop every connection and refuse new ones for `seconds` (blocks that long)."""
        self._drop_all()
        time.sleep(seconds)
        if not self._closed:
            self._listen()

"""A TCP proxy for the review probes: forwards to a real Redis, and can hold back the
replies (server -> client) for a while, or cut a reply in the middle."""

import socket
import threading
import time


class SlowReplyProxy:
    def __init__(self, upstream_port):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay_s = 0.0          # hold each chunk of replies this long
        self.cut_after = None       # bytes of replies to pass before closing the connection
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src, dst, replies):
        passed = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self.delay_s:
                    time.sleep(self.delay_s)
                if replies and self.cut_after is not None:
                    room = self.cut_after - passed
                    if room < len(data):
                        dst.sendall(data[:max(room, 0)])
                        break
                passed += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self._stop = True
        self.listener.close()

#!/usr/bin/env python3
"""An HTTP hook server for the access tests, on Python's own http.server.

Usage: hook_server.py LOG_FILE

Listens on an ephemeral loopback port and prints it on stdout. Every POST is appended to
LOG_FILE as one JSON line, {"path", "content_type", "body"} (body parsed as JSON), before
it is answered. The answer depends on the stream name (or, for connect, the app):

  deny...     403
  code1...    200 {"code":1}
  json0...    200 {"code":0}
  hang...     never answered (the connection stays open)
  garbage...  200 with a body that is not JSON
  huge...     200 with a 10 MB body
  drip...     the status line, then one byte every 200 ms, never finished
  slow...     200 after 300 ms
  anything else, and every *_done event: 200 with an empty body
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_LOCK = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        with LOG_LOCK, open(self.server.log_path, "a") as log:
            entry = {"path": self.path, "content_type": self.headers.get("Content-Type"), "body": body}
            log.write(json.dumps(entry) + "\n")
        action = body.get("action", "")
        name = body.get("app", "") if action == "connect" else body.get("stream", "")
        if action.endswith("_done"):
            name = ""
        if name.startswith("deny"):
            self.answer(403, b"forbidden")
        elif name.startswith("code1"):
            self.answer(200, b'{"code":1}')
        elif name.startswith("json0"):
            self.answer(200, b'{"code":0}')
        elif name.startswith("hang"):
            time.sleep(3600)
        elif name.startswith("garbage"):
            self.answer(200, b"<html>not json</html>")
        elif name.startswith("huge"):
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(160):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
        elif name.startswith("drip"):
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.wfile.flush()
                while True:
                    time.sleep(0.2)
                    self.wfile.write(b"X")
                    self.wfile.flush()
            except OSError:
                pass
        elif name.startswith("slow"):
            time.sleep(0.3)
            self.answer(200, b"")
        else:
            self.answer(200, b"")

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    server.log_path = sys.argv[1]
    open(server.log_path, "w").close()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

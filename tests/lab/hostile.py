"""Port-22 servers that misbehave the ways real networks do. Each is python3 code run in a test node's namespace."""

_SERVE = """
import socket, sys, threading, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 22))
server.listen(50)
def handle(conn):
    try:
{body}
    except OSError:
        pass
while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""


def _server(body: str) -> str:
    return _SERVE.replace("{body}", "\n".join("        " + line for line in body.strip().splitlines()))


SILENT = _server("time.sleep(600)")  # accepts TCP, never sends a banner
BANNER_THEN_SILENCE = _server("conn.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n')\ntime.sleep(600)")
HTTP_ON_22 = _server(
    "conn.recv(1024)\n"
    "conn.sendall(b'HTTP/1.1 400 Bad Request\\r\\nContent-Length: 11\\r\\n\\r\\nBad Request')\n"
    "conn.close()"
)
RESET_IN_KEX = _server(
    "import struct\n"
    "conn.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n')\n"
    "conn.recv(4096)\n"
    "time.sleep(0.2)\n"
    "conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
    "conn.close()"
)

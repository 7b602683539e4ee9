#!/usr/bin/env python3
"""A recording TCP proxy for the encryption test.

    record_proxy.py LISTEN_PORT TARGET_PORT RECORD_FILE

Listens on 127.0.0.1:LISTEN_PORT, connects every accepted connection to
127.0.0.1:TARGET_PORT, forwards bytes both ways unchanged and appends every
byte it forwards, in either direction, to RECORD_FILE (unbuffered, so the
file is complete whenever the test reads it). Prints "listening" once it
accepts connections. Runs until killed.
"""
import selectors
import socket
import sys


def main():
    listen_port, target_port, record_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    record = open(record_path, "ab", buffering=0)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    other = {}
    print("listening", flush=True)

    def close(sock):
        for s in (sock, other.get(sock)):
            if s is not None and s in other:
                selector.unregister(s)
                del other[s]
                s.close()

    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            if sock is server:
                client, _ = server.accept()
                try:
                    upstream = socket.create_connection(("127.0.0.1", target_port))
                except OSError:
                    client.close()
                    continue
                other[client], other[upstream] = upstream, client
                selector.register(client, selectors.EVENT_READ)
                selector.register(upstream, selectors.EVENT_READ)
                continue
            if sock not in other:
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(sock)
                continue
            record.write(data)
            try:
                other[sock].sendall(data)
            except OSError:
                close(sock)


if __name__ == "__main__":
    main()

"""Free loopback ports for servers started by the tests."""

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on the loopback address that nothing listens on right now.

    The port is released before it is returned, so another process could take it first;
    servers started on it fail loudly in that case rather than answering the wrong client.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        port: int = listener.getsockname()[1]
    return port

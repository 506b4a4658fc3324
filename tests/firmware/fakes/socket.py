# Stand-in for MicroPython's `socket` module (tests only): what hal_esp32's connect uses. Every
# socket made is kept in `made`, so a test can check that each one was closed or handed over: on
# a board an unclosed socket holds one of lwIP's ~10 until a garbage collection finds it.
import errno

AF_INET = 2
SOCK_STREAM = 1
IPPROTO_TCP = 6
TCP_NODELAY = 1

made = []


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return [(AF_INET, SOCK_STREAM, IPPROTO_TCP, "", (host, port))]


class socket:
    fail_errno = 0  # non-zero: connect fails at once with this errno (e.g. host unreachable)

    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=IPPROTO_TCP):
        self.closed = False
        self.blocking = True
        self.peer = None
        self.opts = []
        made.append(self)

    def setblocking(self, flag):
        self.blocking = flag

    def connect(self, addr):
        self.peer = addr
        if socket.fail_errno:
            raise OSError(socket.fail_errno)
        if not self.blocking:
            raise OSError(errno.EINPROGRESS)  # the handshake goes on; writable once it is done

    def setsockopt(self, level, opt, value):
        self.opts.append((level, opt, value))

    def close(self):
        self.closed = True

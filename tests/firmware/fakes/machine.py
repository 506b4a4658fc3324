# Stand-in for MicroPython's `machine` module, so hal_esp32 imports off a board (tests only).
def unique_id():
    return b"\x24\x0a\xc4\xaa\xbb\xcc"


class Pin:
    def __init__(self, n):
        self.n = n


class I2S:
    RX = 0
    MONO = 0
    opened = []

    def __init__(self, id, **kw):
        self.id = id
        self.kw = kw
        self.closed = False
        I2S.opened.append(self)

    def deinit(self):
        self.closed = True

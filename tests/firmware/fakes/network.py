# Stand-in for MicroPython's `network` module (tests only): a station that associates after a few
# polls, unless `WLAN.fail` is set.
STA_IF = 0


class WLAN:
    fail = False
    polls_needed = 3

    def __init__(self, iface):
        self._active = False
        self._polls = 0
        self._connecting = False
        self.ssid = None

    def active(self, on=None):
        if on is not None:
            self._active = on
        return self._active

    def connect(self, ssid, key):
        self.ssid = ssid
        self._connecting = True
        self._polls = 0

    def disconnect(self):
        self._connecting = False

    def isconnected(self):
        if not self._connecting or WLAN.fail:
            return False
        self._polls += 1
        return self._polls > WLAN.polls_needed

    def ifconfig(self):
        return ("192.168.4.2", "255.255.255.0", "192.168.4.1", "8.8.8.8")

    def status(self, what=None):
        return -48

    def config(self, what):
        if what == "mac":
            return b"\x24\x0a\xc4\x01\x02\x03"
        raise ValueError(what)

# Stand-in for MicroPython's `socket` module (tests only): the constants hal_esp32 uses.
IPPROTO_TCP = 6
TCP_NODELAY = 1

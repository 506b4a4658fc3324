"""SignalCraft Fleet test firmware (MicroPython). Modules use relative imports only, so the package
works as `scfw` on a board and as `firmware.scfw` under CPython."""

"""The memory plan: what a run needs from the GC heap, and the long-lived buffers, made once.

An ESP32 without PSRAM gives MicroPython ~110 KB of heap, and a heap that has been through a few
hundred uploads is fragmented: a 32 KB bytearray that fitted at boot may not fit later even with
more than 32 KB free. So every buffer that lives for a run is allocated here, at boot, sized from
the stored config, and kept; `start` only re-allocates when the config changed its size, and
first checks the budget (`need`) against the free heap, refusing with `bad_config` and the figures
instead of failing mid-run. The per-item costs are measured on the 32-bit WebAssembly build
(tests/firmware/test_heap.py); see PROTOCOL.md, "Memory plan".
"""

RBUF = 512  # response bytes per read, into a buffer kept per connection
PER_CONN = 3072  # one connection: socket + stream objects, head bytes, response parser, rbuf
PER_RESULT = 200  # one result dict waiting in a batch (results lines at high rates)
PER_CHUNK = 48  # one queued chunk's record (synth chunks hold no audio: rebuilt from the bank)
MARGIN = 12288  # transient allocations: a JSON line, a command, an exception, asyncio's own
RESULT_BATCH_MAX = 8  # results held before a `results` line is sent (flushed every 250 ms too)


def batch_items(batch):
    """Result dicts a run holds at once: a full batch when batching, else the one in flight."""
    return RESULT_BATCH_MAX if batch else 1


def need(cfg, batch_items=0):
    """Bytes a run with this config keeps allocated, margin included: -> (total, text)."""
    bank = cfg["bank_bytes"] - (cfg["bank_bytes"] & 1) if cfg["source"] == "synth" else 0
    conns = cfg["concurrency"] * PER_CONN
    audio = 0
    if cfg["source"] != "synth":
        # The microphone's chunk buffer, plus every queued chunk's own copy.
        held = cfg["buffer_chunks"]
        by_bytes = cfg["buffer_bytes"] // cfg["chunk_bytes"] if cfg["chunk_bytes"] else 0
        if by_bytes < held:
            held = by_bytes
        audio = cfg["chunk_bytes"] * (1 + held)
    results = batch_items * PER_RESULT
    queue = cfg["buffer_chunks"] * PER_CHUNK
    total = bank + conns + audio + results + queue + MARGIN
    parts = []
    if bank:
        parts.append("bank_bytes %d" % bank)
    parts.append("concurrency %d x %d" % (cfg["concurrency"], PER_CONN))
    if audio:
        parts.append("i2s chunks %d" % audio)
    if results:
        parts.append("result batch %d" % results)
    if queue:
        parts.append("queue %d" % queue)
    parts.append("margin %d" % MARGIN)
    return total, " + ".join(parts)


class Pool:
    """The run's long-lived buffers: the audio bank and one read buffer per connection.

    Made at boot from the stored config (before anything fragments the heap) and reused by every
    run; `fit` grows or replaces them only when a new config asks for other sizes.
    """

    def __init__(self):
        self.bank_buf = None
        self.rbufs = []

    def allocated(self):
        n = len(self.rbufs) * RBUF
        if self.bank_buf is not None:
            n += len(self.bank_buf)
        return n

    def releasable(self, cfg):
        """Bytes `release(cfg)` would give back (a bank of another size)."""
        if self.bank_buf is not None and len(self.bank_buf) != _bank_size(cfg):
            return len(self.bank_buf)
        return 0

    def release(self, cfg):
        """Drop the bank if `cfg` needs another size (the caller lets the GC run, then `fit`)."""
        if self.bank_buf is not None and len(self.bank_buf) != _bank_size(cfg):
            self.bank_buf = None
            return True
        return False

    def fit(self, cfg):
        """Make the buffers `cfg` needs; frees what it replaces first. May raise MemoryError."""
        size = _bank_size(cfg)
        if self.bank_buf is None or len(self.bank_buf) != size:
            self.bank_buf = None
            _collect()
            if size:
                self.bank_buf = bytearray(size)
        while len(self.rbufs) < cfg["concurrency"]:
            self.rbufs.append(bytearray(RBUF))

    def reserved_for(self, cfg):
        """Bytes of `need(cfg)` this pool already holds (they need no free heap at start)."""
        held = len(self.rbufs) if len(self.rbufs) < cfg["concurrency"] else cfg["concurrency"]
        n = held * RBUF
        size = cfg["bank_bytes"] - (cfg["bank_bytes"] & 1)
        if cfg["source"] == "synth" and self.bank_buf is not None and len(self.bank_buf) == size:
            n += size
        return n


def _bank_size(cfg):
    return cfg["bank_bytes"] - (cfg["bank_bytes"] & 1) if cfg["source"] == "synth" else 0


def _collect():
    try:
        import gc

        gc.collect()
    except ImportError:
        pass

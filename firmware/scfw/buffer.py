"""Bounded queue of unsent chunks, and the retry backoff.

While the server or Wi-Fi is down the board keeps producing on schedule; the queue holds what it
could not send yet, bounded by count and by stored bytes (synth chunks store no bytes: they are
rebuilt from their sequence number), and drops the OLDEST when full so what is sent stays fresh.
Every drop is counted and reported in `status`.
"""


class Chunk:
    """One scheduled upload. `data` is None for synth chunks (rebuilt from `seq`)."""

    __slots__ = ("seq", "sched_us", "data", "nbytes", "attempts")

    def __init__(self, seq, sched_us, nbytes, data=None):
        self.seq = seq
        self.sched_us = sched_us
        self.data = data
        self.nbytes = nbytes
        self.attempts = 0


class ChunkQueue:
    def __init__(self, max_chunks=8, max_bytes=65536):
        self.max_chunks = max_chunks
        self.max_bytes = max_bytes
        self.items = []
        self.stored = 0
        self.dropped = 0  # chunks dropped because the queue was full (or after the last retry)

    def __len__(self):
        return len(self.items)

    def _cost(self, c):
        return 0 if c.data is None else len(c.data)

    def push(self, chunk):
        """Queue a chunk, dropping the oldest ones to make room. -> number dropped."""
        n = 0
        if self._cost(chunk) > self.max_bytes or self.max_chunks < 1:
            self.dropped += 1
            return 1
        while self.items and (
            len(self.items) >= self.max_chunks or self.stored + self._cost(chunk) > self.max_bytes
        ):
            old = self.items.pop(0)
            self.stored -= self._cost(old)
            n += 1
        self.dropped += n
        self.items.append(chunk)
        self.stored += self._cost(chunk)
        return n

    def requeue(self, chunk):
        """Put a failed chunk back at the front (it is the oldest) if it still fits."""
        if len(self.items) >= self.max_chunks or self.stored + self._cost(chunk) > self.max_bytes:
            self.dropped += 1
            return False
        self.items.insert(0, chunk)
        self.stored += self._cost(chunk)
        return True

    def pop(self):
        """The oldest chunk, or None."""
        if not self.items:
            return None
        c = self.items.pop(0)
        self.stored -= self._cost(c)
        return c

    def clear(self):
        self.items = []
        self.stored = 0


class Backoff:
    """Exponential backoff: base * factor**(attempt-1), capped, with optional seeded jitter.

    Jitter (a fraction, e.g. 0.1 = +-10 %) keeps a bench of boards from retrying in lockstep after
    the server comes back; `rand` is a callable returning a 32-bit int (the synth's xorshift).
    """

    def __init__(self, base_ms=250, factor=2, max_ms=8000, jitter=0.0, rand=None):
        self.base_ms = base_ms
        self.factor = factor
        self.max_ms = max_ms
        self.jitter = jitter
        self.rand = rand

    def delay_ms(self, attempt):
        """Delay before retry number `attempt` (1 = first retry)."""
        if attempt < 1:
            return 0
        d = self.base_ms
        for _ in range(attempt - 1):
            d *= self.factor
            if d >= self.max_ms:
                break
        if d > self.max_ms:
            d = self.max_ms
        if self.jitter and self.rand is not None:
            span = int(d * self.jitter)
            if span:
                d += (self.rand() % (2 * span + 1)) - span
        return int(d)

    def schedule(self, attempts):
        return [self.delay_ms(i) for i in range(1, attempts + 1)]

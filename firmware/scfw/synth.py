"""Machine sound on the board: integer maths into a preallocated bytearray, no numpy.

The same family of models as the host's audio_synth: motor hum at 2x the line frequency with two
harmonics, 1x-rpm imbalance, bearing impacts (outer-race period, 1-2 % slip jitter) that each ring a
decaying structural resonance, and broadband noise, all reproducible from the device seed.
Rendering runs once into a bank; chunks are rotations of the bank (`Bank.parts`), so a queued
chunk needs no memory of its own and is rebuilt from its sequence number when (re)sent.
"""

import math

_M32 = 0xFFFFFFFF
_TBITS = 10  # sine table of 1024 entries, Q15
_SHIFT = 32 - _TBITS
_ONE = 1 << 40  # fixed point for the table's construction
_PI = 3454217652358  # round(pi * 2**40)
_SINE = None


def _isin(x):
    """sin(x) for 0 <= x <= pi/2, x and result scaled by 2**40: integer Taylor series, so the
    table is bit-identical on a board with single-precision floats and on a host."""
    term = x
    total = x
    k = 1
    while term:
        term = term * x // _ONE * x // _ONE // ((2 * k) * (2 * k + 1))
        total += -term if k & 1 else term
        k += 1
    return total


def _sine():
    global _SINE
    if _SINE is None:
        n = 1 << _TBITS
        q = n // 4
        quarter = [(_isin(_PI * i // (2 * q)) * 32767 + _ONE // 2) // _ONE for i in range(q + 1)]
        t = [0] * n
        for i in range(n):
            j = i % (2 * q)
            v = quarter[j] if j <= q else quarter[2 * q - j]
            t[i] = v if i < 2 * q else -v
        _SINE = t
    return _SINE


def device_seed(device_id):
    """FNV-1a 32 of the device ID: the seed when the host gives none, stable across reboots."""
    h = 0x811C9DC5
    for b in device_id.encode():
        h = ((h ^ b) * 0x01000193) & _M32
    return h


class XorShift32:
    """Marsaglia xorshift32: cheap, integer-only, same sequence on every Python."""

    def __init__(self, seed):
        self.s = (seed & _M32) or 0x9E3779B9

    def next(self):
        x = self.s
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self.s = x
        return x

    def below(self, n):
        return self.next() % n


def _inc(num, den, rate):
    """Phase increment per sample for a frequency of num/den Hz (32-bit phase, integers only)."""
    return ((num << 32) + den * rate // 2) // (den * rate) & _M32


class Synth:
    """A per-device machine. render() continues the stream, so pieces concatenate seamlessly."""

    def __init__(self, seed, sample_rate=16000, line_hz=50):
        self.rate = sample_rate
        rng = XorShift32(seed)
        self.rng = XorShift32(rng.next())
        hum = 2 * line_hz
        self.hum_hz = hum
        self.rpm = 1380 + rng.below(110)  # a 4-pole induction motor under load on 50 Hz
        # Outer-race fault frequency, 8 balls, d/D = 0.2: BPFO = 0.5*8*(rpm/60)*0.8 = rpm*16/300.
        self.bpfo_hz = self.rpm * 16 / 300
        self.res_hz = 2500 + rng.below(1500)
        # Amplitudes in sample units (full scale 32767), varied per device.
        self.a_hum = (2600 + rng.below(800), 900 + rng.below(400), 400 + rng.below(300))
        self.a_rot = 900 + rng.below(700)
        self.a_noise = 500 + rng.below(400)
        self.fault = rng.below(4) == 0  # one machine in four has a bearing fault
        a_imp = 3500 if self.fault else 400
        r = sample_rate
        self.incs = (_inc(hum, 1, r), _inc(2 * hum, 1, r), _inc(3 * hum, 1, r))
        self.inc_rot = _inc(self.rpm, 60, r)
        self.ph = [0, 0, 0]
        self.ph_rot = rng.next()
        # Decaying resonance rung by each impact: damping ~5 % (per-sample decay 0.05*w), kept
        # until it falls to 1 % of its peak; integer maths so every platform gets the same kernel.
        tbl = _sine()
        w_q30 = 2 * (_PI >> 10) * self.res_hz // r
        keep = (1 << 30) - w_q30 * 5 // 100
        env = 1 << 30
        inc = _inc(self.res_hz, 1, r)
        ph = 0
        kern = []
        while env > (1 << 30) // 100:
            kern.append((tbl[ph >> _SHIFT] * a_imp >> 15) * env >> 30)
            ph = (ph + inc) & _M32
            env = env * keep >> 30
        self.kernel = kern
        # Impact times in samples, Q16 fixed point: period = rate / BPFO = rate*300 / (16*rpm).
        self.period_q16 = (r * 300 << 16) // (16 * self.rpm)
        self.next_imp = self.period_q16 * rng.below(1000) // 1000
        self.imp_k = -1
        self.n = 0  # samples rendered so far

    def render(self, buf, nbytes=None):
        """Fill buf[:nbytes] (even) with the next 16-bit little-endian samples."""
        if nbytes is None:
            nbytes = len(buf)
        tbl = _sine()
        sh = _SHIFT
        i1, i2, i3 = self.incs
        a1, a2, a3 = self.a_hum
        p1, p2, p3 = self.ph
        pr = self.ph_rot
        ir = self.inc_rot
        ar = self.a_rot
        an = self.a_noise
        kern = self.kernel
        klen = len(kern)
        imp_k = self.imp_k
        next_imp = self.next_imp
        period = self.period_q16
        rng = self.rng
        x = rng.s
        n = self.n
        for j in range(0, nbytes - 1, 2):
            s = (
                tbl[p1 >> sh] * a1 + tbl[p2 >> sh] * a2 + tbl[p3 >> sh] * a3 + tbl[pr >> sh] * ar
            ) >> 15
            p1 = (p1 + i1) & _M32
            p2 = (p2 + i2) & _M32
            p3 = (p3 + i3) & _M32
            pr = (pr + ir) & _M32
            x ^= (x << 13) & _M32
            x ^= x >> 17
            x ^= (x << 5) & _M32
            s += (((x & 0xFFFF) - 32768) * an) >> 15
            if (n << 16) >= next_imp:
                imp_k = 0
                # slip: each impact comes up to 1.5 % early or late
                next_imp += period * (10000 + (x >> 16) % 301 - 150) // 10000
            if imp_k >= 0:
                s += kern[imp_k]
                imp_k += 1
                if imp_k >= klen:
                    imp_k = -1
            if s > 32767:
                s = 32767
            elif s < -32768:
                s = -32768
            buf[j] = s & 0xFF
            buf[j + 1] = (s >> 8) & 0xFF
            n += 1
        self.ph = [p1, p2, p3]
        self.ph_rot = pr
        rng.s = x
        self.imp_k = imp_k
        self.next_imp = next_imp
        self.n = n
        return nbytes


class Bank:
    """Audio rendered once; each sequence number reads a rotation of it, without copying."""

    STEP = 104729  # prime sample stride between consecutive chunks' start points

    def __init__(self, synth, nbytes):
        nbytes -= nbytes & 1
        self.buf = bytearray(nbytes)
        synth.render(self.buf)
        self.mv = memoryview(self.buf)

    def parts(self, seq, nbytes):
        """Memoryviews whose concatenation is chunk `seq` of nbytes (wrapping around the bank)."""
        size = len(self.buf)
        off = ((seq * self.STEP) % (size // 2)) * 2
        out = []
        left = nbytes
        while left > 0:
            take = size - off
            if take > left:
                take = left
            out.append(self.mv[off : off + take])
            left -= take
            off = 0
        return out

    def chunk(self, seq, nbytes):
        out = bytearray(nbytes)
        pos = 0
        for p in self.parts(seq, nbytes):
            out[pos : pos + len(p)] = p
            pos += len(p)
        return out


def goertzel_power(pcm, nbytes, rate, freq):
    """Power of one frequency in 16-bit LE PCM (used by tests and by `status` self-checks)."""
    w = 2 * math.pi * freq / rate
    c = 2 * math.cos(w)
    s1 = 0.0
    s2 = 0.0
    for j in range(0, nbytes - 1, 2):
        v = pcm[j] | (pcm[j + 1] << 8)
        if v >= 32768:
            v -= 65536
        s0 = v + c * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - c * s1 * s2

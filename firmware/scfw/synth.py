"""Machine sound on the board: integer maths into a preallocated bytearray, no numpy.

The same family of models as the host's audio_synth: motor hum at 2x the line frequency with two
harmonics, 1x-rpm imbalance, bearing impacts (outer-race period, 1-2 % slip jitter) that each ring a
decaying structural resonance, and broadband noise, all reproducible from the device seed.
Rendering runs once into a bank; chunks are rotations of the bank (`Bank.parts`), so a queued
chunk needs no memory of its own and is rebuilt from its sequence number when (re)sent.
"""

import math
from array import array

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


# sin() over a quarter wave, 257 entries Q15 as 16-bit LE: the values _isin() gives (a test
# recomputes them), stored so the board builds its table without big-integer temporaries.
_QUARTER = (
    b"\x00\x00\xc9\x00\x92\x01\x5b\x02\x24\x03\xed\x03\xb6\x04\x7f\x05\x48\x06\x11\x07\xd9\x07"
    b"\xa2\x08\x6a\x09\x33\x0a\xfb\x0a\xc4\x0b\x8c\x0c\x54\x0d\x1c\x0e\xe3\x0e\xab\x0f\x72\x10"
    b"\x3a\x11\x01\x12\xc8\x12\x8f\x13\x55\x14\x1c\x15\xe2\x15\xa8\x16\x6e\x17\x33\x18\xf9\x18"
    b"\xbe\x19\x82\x1a\x47\x1b\x0b\x1c\xcf\x1c\x93\x1d\x57\x1e\x1a\x1f\xdd\x1f\x9f\x20\x61\x21"
    b"\x23\x22\xe5\x22\xa6\x23\x67\x24\x28\x25\xe8\x25\xa8\x26\x67\x27\x26\x28\xe5\x28\xa3\x29"
    b"\x61\x2a\x1f\x2b\xdc\x2b\x99\x2c\x55\x2d\x11\x2e\xcc\x2e\x87\x2f\x41\x30\xfb\x30\xb5\x31"
    b"\x6e\x32\x26\x33\xdf\x33\x96\x34\x4d\x35\x04\x36\xba\x36\x6f\x37\x24\x38\xd9\x38\x8c\x39"
    b"\x40\x3a\xf2\x3a\xa5\x3b\x56\x3c\x07\x3d\xb8\x3d\x68\x3e\x17\x3f\xc5\x3f\x73\x40\x21\x41"
    b"\xce\x41\x7a\x42\x25\x43\xd0\x43\x7a\x44\x24\x45\xcd\x45\x75\x46\x1c\x47\xc3\x47\x69\x48"
    b"\x0f\x49\xb4\x49\x58\x4a\xfb\x4a\x9d\x4b\x3f\x4c\xe0\x4c\x81\x4d\x20\x4e\xbf\x4e\x5d\x4f"
    b"\xfb\x4f\x97\x50\x33\x51\xce\x51\x68\x52\x02\x53\x9b\x53\x32\x54\xc9\x54\x60\x55\xf5\x55"
    b"\x8a\x56\x1d\x57\xb0\x57\x42\x58\xd3\x58\x64\x59\xf3\x59\x82\x5a\x0f\x5b\x9c\x5b\x28\x5c"
    b"\xb3\x5c\x3e\x5d\xc7\x5d\x4f\x5e\xd7\x5e\x5d\x5f\xe3\x5f\x68\x60\xeb\x60\x6e\x61\xf0\x61"
    b"\x71\x62\xf1\x62\x70\x63\xee\x63\x6c\x64\xe8\x64\x63\x65\xdd\x65\x56\x66\xcf\x66\x46\x67"
    b"\xbc\x67\x32\x68\xa6\x68\x19\x69\x8b\x69\xfd\x69\x6d\x6a\xdc\x6a\x4a\x6b\xb7\x6b\x23\x6c"
    b"\x8e\x6c\xf8\x6c\x61\x6d\xc9\x6d\x30\x6e\x96\x6e\xfb\x6e\x5e\x6f\xc1\x6f\x22\x70\x83\x70"
    b"\xe2\x70\x40\x71\x9d\x71\xf9\x71\x54\x72\xae\x72\x07\x73\x5e\x73\xb5\x73\x0a\x74\x5f\x74"
    b"\xb2\x74\x04\x75\x55\x75\xa5\x75\xf3\x75\x41\x76\x8d\x76\xd8\x76\x22\x77\x6b\x77\xb3\x77"
    b"\xfa\x77\x3f\x78\x84\x78\xc7\x78\x09\x79\x4a\x79\x89\x79\xc8\x79\x05\x7a\x41\x7a\x7c\x7a"
    b"\xb6\x7a\xee\x7a\x26\x7b\x5c\x7b\x91\x7b\xc5\x7b\xf8\x7b\x29\x7c\x59\x7c\x88\x7c\xb6\x7c"
    b"\xe3\x7c\x0e\x7d\x39\x7d\x62\x7d\x89\x7d\xb0\x7d\xd5\x7d\xfa\x7d\x1d\x7e\x3e\x7e\x5f\x7e"
    b"\x7e\x7e\x9c\x7e\xb9\x7e\xd5\x7e\xef\x7e\x09\x7f\x21\x7f\x37\x7f\x4d\x7f\x61\x7f\x74\x7f"
    b"\x86\x7f\x97\x7f\xa6\x7f\xb4\x7f\xc1\x7f\xcd\x7f\xd8\x7f\xe1\x7f\xe9\x7f\xf0\x7f\xf5\x7f"
    b"\xf9\x7f\xfd\x7f\xfe\x7f\xff\x7f"
)


def _sine():
    global _SINE
    if _SINE is None:
        n = 1 << _TBITS
        q = n // 4
        qt = _QUARTER
        t = array("h", bytes(2 * n))  # 2 KB of int16; a list would take 4 KB
        for i in range(n):
            j = i % (2 * q)
            k = j if j <= q else 2 * q - j
            v = qt[2 * k] | (qt[2 * k + 1] << 8)
            t[i] = v if i < 2 * q else -v
        _SINE = t
    return _SINE


sine_table = _sine  # the app builds it at boot, with the other long-lived allocations


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
        # Q30 products are split into 15-bit halves so every temporary is a small int (a 32-bit
        # MicroPython boxes anything >= 2**30): same values as `v * env >> 30`, no garbage.
        tbl = _sine()
        w_q30 = 2 * (_PI >> 10) * self.res_hz // r
        keep = (1 << 30) - w_q30 * 5 // 100
        kh = keep >> 15
        kl = keep & 0x7FFF
        env = 1 << 30
        inc = _inc(self.res_hz, 1, r)
        ih = inc >> 16
        il = inc & 0xFFFF
        ph = 0
        pl = 0
        kern = []
        while env > (1 << 30) // 100:
            v = tbl[ph >> 6] * a_imp >> 15
            eh = env >> 15
            el = env & 0x7FFF
            kern.append((v * eh + (v * el >> 15)) >> 15)
            pl += il
            ph = (ph + ih + (pl >> 16)) & 0xFFFF
            pl &= 0xFFFF
            env = eh * kh + ((eh * kl + el * kh + (el * kl >> 15)) >> 15)
        self.kernel = kern
        # Impact times in samples, Q16 fixed point: period = rate / BPFO = rate*300 / (16*rpm).
        self.period_q16 = (r * 300 << 16) // (16 * self.rpm)
        self.next_imp = self.period_q16 * rng.below(1000) // 1000
        self.imp_k = -1
        self.n = 0  # samples rendered so far

    def render(self, buf, nbytes=None):
        """Fill buf[:nbytes] (even) with the next 16-bit little-endian samples.

        The 32-bit phases and the xorshift state are kept as 16-bit halves (h, l) so that no
        temporary reaches 2**30: on a 32-bit MicroPython each sample then allocates nothing
        (with whole 32-bit values it made ~0.5 KB of big-integer garbage per sample). The
        values are exactly those of the 32-bit arithmetic: the golden test checks the bytes.
        """
        if nbytes is None:
            nbytes = len(buf)
        tbl = _sine()
        i1, i2, i3 = self.incs
        i1h = i1 >> 16
        i1l = i1 & 0xFFFF
        i2h = i2 >> 16
        i2l = i2 & 0xFFFF
        i3h = i3 >> 16
        i3l = i3 & 0xFFFF
        irh = self.inc_rot >> 16
        irl = self.inc_rot & 0xFFFF
        a1, a2, a3 = self.a_hum
        p1, p2, p3 = self.ph
        p1h = p1 >> 16
        p1l = p1 & 0xFFFF
        p2h = p2 >> 16
        p2l = p2 & 0xFFFF
        p3h = p3 >> 16
        p3l = p3 & 0xFFFF
        prh = self.ph_rot >> 16
        prl = self.ph_rot & 0xFFFF
        ar = self.a_rot
        an = self.a_noise
        kern = self.kernel
        klen = len(kern)
        imp_k = self.imp_k
        next_imp = self.next_imp
        due = (next_imp - 1) >> 16
        period = self.period_q16
        rng = self.rng
        xh = rng.s >> 16
        xl = rng.s & 0xFFFF
        n = self.n
        for j in range(0, nbytes - 1, 2):
            # table index = phase >> 22 = high half >> 6
            s = (
                tbl[p1h >> 6] * a1 + tbl[p2h >> 6] * a2 + tbl[p3h >> 6] * a3 + tbl[prh >> 6] * ar
            ) >> 15
            p1l += i1l
            p1h = (p1h + i1h + (p1l >> 16)) & 0xFFFF
            p1l &= 0xFFFF
            p2l += i2l
            p2h = (p2h + i2h + (p2l >> 16)) & 0xFFFF
            p2l &= 0xFFFF
            p3l += i3l
            p3h = (p3h + i3h + (p3l >> 16)) & 0xFFFF
            p3l &= 0xFFFF
            prl += irl
            prh = (prh + irh + (prl >> 16)) & 0xFFFF
            prl &= 0xFFFF
            # xorshift32 on halves: x ^= x << 13; x ^= x >> 17; x ^= x << 5
            xh ^= ((xh << 13) | (xl >> 3)) & 0xFFFF
            xl ^= (xl << 13) & 0xFFFF
            xl ^= xh >> 1
            xh ^= ((xh << 5) | (xl >> 11)) & 0xFFFF
            xl ^= (xl << 5) & 0xFFFF
            s += ((xl - 32768) * an) >> 15
            if n > due:  # (n << 16) >= next_imp, tested without a big integer per sample
                imp_k = 0
                # slip: each impact comes up to 1.5 % early or late
                next_imp += period * (10000 + xh % 301 - 150) // 10000
                due = (next_imp - 1) >> 16
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
        self.ph = [(p1h << 16) | p1l, (p2h << 16) | p2l, (p3h << 16) | p3l]
        self.ph_rot = (prh << 16) | prl
        rng.s = (xh << 16) | xl
        self.imp_k = imp_k
        self.next_imp = next_imp
        self.n = n
        return nbytes


class Bank:
    """Audio rendered once; each sequence number reads a rotation of it, without copying."""

    STEP = 104729  # prime sample stride between consecutive chunks' start points

    def __init__(self, synth, nbytes, buf=None, render=True):
        nbytes -= nbytes & 1
        # `buf`: the bytearray the memory pool made at boot (mem.Pool), rendered in place;
        # render=False leaves the rendering to the caller (the app does it in pieces).
        self.buf = buf if buf is not None and len(buf) == nbytes else bytearray(nbytes)
        if render:
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

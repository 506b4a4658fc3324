"""SLIP framing and the loader checksum, byte-exact."""

from __future__ import annotations

import random

from hw_bridge.emulator import slip
from hw_bridge.emulator.rom import checksum


def test_encode_escapes_delimiter_and_escape_bytes() -> None:
    assert slip.encode(b"\x01\xc0\x02\xdb\x03") == b"\xc0\x01\xdb\xdc\x02\xdb\xdd\x03\xc0"


def test_roundtrip_every_split_point() -> None:
    rng = random.Random(7)
    payloads = [bytes([0xC0, 0xDB, 0xDB, 0xDC, 0xDD]), rng.randbytes(300), b"\xdb\xdc\xc0"]
    stream = b"noise" + b"".join(slip.encode(p) for p in payloads)
    for cut in range(len(stream) + 1):
        dec = slip.SlipDecoder()
        frames = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert frames == payloads, cut
        assert dec.noise_bytes == 5


def test_byte_at_a_time() -> None:
    payload = bytes(range(256)) * 3
    dec = slip.SlipDecoder()
    frames: list[bytes] = []
    for b in slip.encode(payload) + slip.encode(b"x"):
        frames += dec.feed(bytes([b]))
    assert frames == [payload, b"x"]


def test_invalid_escape_drops_only_that_frame() -> None:
    dec = slip.SlipDecoder()
    frames = dec.feed(b"\xc0\x01\xdb\x02\xc0" + slip.encode(b"ok") + b"\xc0\x05\xdb\xc0")
    assert frames == [b"ok"]
    assert dec.bad_frames == 2


def test_empty_frames_between_packets_are_skipped() -> None:
    dec = slip.SlipDecoder()
    assert dec.feed(b"\xc0\xc0\xc0a\xc0\xc0b\xc0") == [b"a", b"b"]


def test_checksum_matches_esptool_definition() -> None:
    rng = random.Random(3)
    for n in (0, 1, 7, 8, 9, 1024, 16384 + 3):
        data = rng.randbytes(n)
        expected = 0xEF
        for b in data:
            expected ^= b
        assert checksum(data) == expected
    assert checksum(b"") == 0xEF

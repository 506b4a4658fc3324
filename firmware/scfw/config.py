"""The board's persisted configuration (a JSON file on its filesystem).

Kept on the board so a provisioned board survives a reboot. The Wi-Fi key is stored there (the
radio needs it) but never leaves the board again: `public()` replaces it with `wifi_key_set`.
"""

import json

from .http import HttpError, parse_url
from .proto import ProtoError, is_int, is_num

FILE = "scfw_config.json"

# name: (default, kind). Kinds: str, int, num, bool, dict (str->str), opt_int (int or None).
SCHEMA = {
    "wifi_ssid": ("", "str"),
    "wifi_key": ("", "str"),
    "target": ("", "str"),
    "device_id": ("", "str"),
    "sample_rate": (16000, "int"),
    "chunk_bytes": (32000, "int"),
    "headers": ({}, "dict"),
    "seed": (None, "opt_int"),
    "keep_alive": (True, "bool"),
    "source": ("synth", "str"),
    "line_hz": (50, "int"),
    "bank_bytes": (16000, "int"),  # 0.5 s at 16 kHz: fits an ESP32 without PSRAM (mem.py)
    "concurrency": (1, "int"),
    "timeout_s": (10.0, "num"),
    "buffer_chunks": (8, "int"),
    "buffer_bytes": (65536, "int"),
    "retries": (5, "int"),
    "backoff_ms": (250, "int"),
    "backoff_max_ms": (8000, "int"),
    "batch_above_rps": (10.0, "num"),
    "i2s_id": (0, "int"),
    "i2s_sck": (14, "int"),
    "i2s_ws": (15, "int"),
    "i2s_sd": (32, "int"),
}

SECRET = "wifi_key"
_LIMITS = {
    "sample_rate": (1000, 96000),
    "chunk_bytes": (2, 1 << 20),
    "bank_bytes": (2, 1 << 20),
    "line_hz": (40, 70),
    "concurrency": (1, 8),
    "buffer_chunks": (0, 1000),
    "buffer_bytes": (0, 1 << 24),
    "retries": (0, 100),
    "backoff_ms": (1, 600000),
    "backoff_max_ms": (1, 3600000),
}


def defaults():
    d = {}
    for k in SCHEMA:
        v = SCHEMA[k][0]
        d[k] = dict(v) if isinstance(v, dict) else v
    return d


def check(fields, id=None):
    """Validate a partial config (from a `config` command or the file). -> dict of clean values."""
    out = {}
    for k in fields:
        if k not in SCHEMA:
            raise ProtoError("bad_config", "unknown config key %r" % k, id)
        v = fields[k]
        kind = SCHEMA[k][1]
        ok = (
            (kind == "str" and isinstance(v, str))
            or (kind == "int" and is_int(v))
            or (kind == "num" and is_num(v) and v > 0)
            or (kind == "bool" and isinstance(v, bool))
            or (kind == "opt_int" and (v is None or is_int(v)))
            or (kind == "dict" and isinstance(v, dict))
        )
        if not ok:
            raise ProtoError("bad_config", "config key %s must be %s" % (k, kind), id)
        if kind == "dict":
            for hk in v:
                if not isinstance(v[hk], str) or not hk or "\n" in hk + v[hk] or "\r" in hk + v[hk]:
                    raise ProtoError("bad_config", "header %r must be a one-line string" % hk, id)
            v = dict(v)
        if k in _LIMITS:
            lo, hi = _LIMITS[k]
            if v < lo or v > hi:
                raise ProtoError("bad_config", "config key %s must be in %d..%d" % (k, lo, hi), id)
        if k == "chunk_bytes" and v % 2:
            raise ProtoError("bad_config", "chunk_bytes must be even (16-bit samples)", id)
        if k == "source" and v not in ("synth", "i2s"):
            raise ProtoError("bad_config", "source must be synth or i2s", id)
        if k == "target" and v:
            if not (v.startswith("http://") or v.startswith("https://")):
                raise ProtoError("bad_config", "target must be an http:// or https:// URL", id)
            try:
                parse_url(v)
            except HttpError as e:
                raise ProtoError("bad_config", "target: %s" % e, id)
        out[k] = v
    return out


def public(cfg):
    """The config as it may be printed: the Wi-Fi key reduced to whether one is set."""
    d = {}
    for k in cfg:
        if k != SECRET:
            d[k] = cfg[k]
    d["wifi_key_set"] = bool(cfg.get(SECRET))
    return d


def load(hal):
    """Defaults overlaid with the stored file; a corrupt file is reported, not fatal.

    Keys the firmware does not know (e.g. the `"v": 1` that `scfleet hw flash` writes) are ignored,
    so an older firmware reads a newer provisioning file.
    """
    cfg = defaults()
    raw = hal.read_file(FILE)
    if raw is None:
        return cfg, None
    try:
        stored = json.loads(raw)
        if not isinstance(stored, dict):
            raise ValueError("not an object")
        known = {}
        for k in stored:
            if k in SCHEMA:
                known[k] = stored[k]
        cfg.update(check(known))
    except Exception as e:
        return cfg, "stored config ignored: %s" % e
    return cfg, None


def save(hal, cfg):
    hal.write_file(FILE, json.dumps(cfg))

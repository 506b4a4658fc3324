"""JSON-lines protocol between a host and the firmware (see firmware/PROTOCOL.md).

Sans-I/O so the same code is unit-tested under CPython and real MicroPython: parsing never raises
anything but ProtoError, so a garbage line always becomes an `error` reply instead of a crash.
"""

import json

VERSION = 1
FW_VERSION = "0.1.0"
MAX_LINE = 4096

COMMANDS = ("hello", "config", "start", "stop", "status", "ping", "exit")

_SEP = (",", ":")


class ProtoError(Exception):
    """A line the firmware refuses; `code` is machine-readable, `id` echoes the request if known."""

    def __init__(self, code, msg, id=None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.id = id


def is_int(x):
    # MicroPython: isinstance(True, int) is False, CPython: True. Booleans are never numbers here.
    return isinstance(x, int) and not isinstance(x, bool)


def is_num(x):
    return is_int(x) or isinstance(x, float)


def parse(line):
    """Decode one host line (bytes or str, without or with the newline) into a command dict."""
    if isinstance(line, str):
        line = line.encode()
    if len(line) > MAX_LINE:
        raise ProtoError("too_long", "line longer than %d bytes" % MAX_LINE)
    line = bytes(line).strip()
    if not line:
        raise ProtoError("empty", "empty line")
    try:
        text = line.decode()
    except Exception:
        raise ProtoError("bad_json", "line is not UTF-8")
    try:
        msg = json.loads(text)
    except Exception:
        raise ProtoError("bad_json", "line is not JSON")
    if not isinstance(msg, dict):
        raise ProtoError("bad_json", "line is not a JSON object")
    mid = msg.get("id")
    if mid is not None and not (is_int(mid) or isinstance(mid, str)):
        raise ProtoError("bad_id", "id must be an integer or a string")
    v = msg.get("v", VERSION)
    if not is_int(v) or v < 1 or v > VERSION:
        raise ProtoError(
            "bad_version", "unsupported protocol version %r (board speaks %d)" % (v, VERSION), mid
        )
    t = msg.get("t")
    if not isinstance(t, str) or t not in COMMANDS:
        raise ProtoError("unknown_command", "unknown command %r" % (t,), mid)
    if mid is None:
        raise ProtoError("bad_id", "command %s has no id" % t)
    return msg


def encode(obj):
    """One board line: compact JSON, the protocol version added, newline-terminated bytes."""
    if "v" not in obj:
        obj["v"] = VERSION
    return json.dumps(obj, separators=_SEP).encode() + b"\n"


def ok(id, **fields):
    d = {"t": "ok", "id": id}
    d.update(fields)
    return d


def error(id, code, msg):
    return {"t": "error", "id": id, "code": code, "msg": msg}


def log(level, msg):
    return {"t": "log", "level": level, "msg": msg}


def result_item(seq, attempt, t_us, lag_us, status, latency_us, nbytes, err, dup=False):
    return {
        "seq": seq,
        "attempt": attempt,
        "t_us": t_us,
        "lag_us": lag_us,
        "status": status,
        "latency_us": latency_us,
        "bytes": nbytes,
        "error": err,
        "dup": dup,
    }


def result(item):
    d = {"t": "result"}
    d.update(item)
    return d


def results(items):
    return {"t": "results", "items": items}

"""The firmware app: reads host commands, uploads audio on a schedule, reports every request.

Runs unchanged on a board (hal_esp32) and on a host (hal_host): all hardware goes through `hal`.
The schedule is open-model, like the virtual devices: chunk k is due at t0 + k * interval whether
or not earlier uploads finished; what cannot be sent waits in a bounded queue (oldest dropped and
counted), and each result carries the scheduled-start lag so the host can correct for coordinated
omission.
"""

import asyncio

from . import buffer, config, http, mem, proto, synth

RESULT_FLUSH_MS = 250
RENDER_PIECE = 1024  # bank bytes rendered between two yields: the console stays responsive
RESULT_BATCH_MAX = mem.RESULT_BATCH_MAX
# `start`'s `seq`: the first X-Sequence a host may ask for (a small int on every port)
SEQ_LIMIT = 1 << 31
# the server holds this X-Sequence with other audio: a retry would be refused the same way
CONFLICT = 409


def _err_text(e):
    name = type(e).__name__
    msg = str(e)
    return name + ": " + msg if msg else name


class Stats:
    def __init__(self):
        self.produced = 0  # chunks scheduled
        self.sent = 0  # HTTP attempts made
        self.ok = 0  # 2xx answers
        self.failed = 0  # attempts without a 2xx answer
        self.retried = 0
        self.bytes_sent = 0
        self.duplicates = 0  # 2xx answers saying the server already had the chunk (still ok)
        # 409s: the server holds the chunk's X-Sequence with other audio and stored nothing
        # (this board's audio changed under a sequence it sent before); never retried, dropped
        self.conflicts = 0

    def as_dict(self):
        return {
            "produced": self.produced,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "retried": self.retried,
            "bytes_sent": self.bytes_sent,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
        }


class Run:
    """One `start`: a producer on the schedule, `concurrency` senders, a result flusher."""

    def __init__(self, app, period, duration_us, t0_us, grace_us, run_id):
        self.app = app
        self.hal = app.hal
        cfg = app.cfg
        self.cfg = cfg
        # Chunk k is due at t0 + k * num // den microseconds: exact integers, because a board's
        # single-precision floats would drift by milliseconds over a long run.
        self.period_num, self.period_den = period
        self.interval_us = self.period_num // self.period_den
        self.duration_us = duration_us
        self.t0_us = t0_us
        self.grace_us = grace_us
        self.run_id = run_id
        self.queue = buffer.ChunkQueue(cfg["buffer_chunks"], cfg["buffer_bytes"])
        rng = synth.XorShift32(app.seed() ^ 0x5BD1E995)
        self.backoff = buffer.Backoff(
            cfg["backoff_ms"], 2, backoff_cap_ms(cfg, self.interval_us), 0.1, rng.next
        )
        self.stats = app.stats
        self.wake = asyncio.Event()
        self.producing = True
        self.in_flight = 0
        self.batch = 1e6 / self.interval_us > cfg["batch_above_rps"]
        self.pending = []
        self.clients = []
        self.headers = [
            ("X-Device-ID", app.device_id()),
            ("X-Sample-Rate", str(cfg["sample_rate"])),
            ("Content-Type", "application/octet-stream"),
        ]
        for k in cfg["headers"]:
            self.headers.append((k, cfg["headers"][k]))
        self.mic = app.mic
        self.mic_buf = bytearray(cfg["chunk_bytes"]) if self.mic is not None else None

    async def main(self):
        hal = self.hal
        tasks = []
        try:
            for i in range(self.cfg["concurrency"]):
                c = http.Client(
                    self.cfg["target"],
                    hal.open_connection,
                    self.cfg["keep_alive"],
                    self.cfg["timeout_s"],
                    self.app.pool.rbufs[i],
                )
                self.clients.append(c)
                tasks.append(asyncio.create_task(self.sender(c)))
            if self.batch:
                tasks.append(asyncio.create_task(self.flusher()))
            await self.producer()
            self.producing = False
            self.wake.set()
            await self._drain()
        except Exception as e:
            self.app.emit(proto.log("error", "run failed: " + _err_text(e)))
        finally:
            lost = self.in_flight  # requests cut short by stop/grace: their chunks are lost
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except BaseException:
                    pass
            for c in self.clients:
                await c.close()
            if self.mic is not None:
                try:
                    self.mic.close()
                except Exception:
                    pass
                self.app.mic = None
            self.queue.dropped += len(self.queue) + lost
            self.queue.clear()
            self.flush()
            d = {"t": "done", "run": self.run_id}
            d.update(self.app.counters())
            self.app.emit(d)

    async def _drain(self):
        """After the last chunk is due, give the senders `grace` to empty the queue."""
        end = self.hal.monotonic_us() + self.grace_us
        while self.hal.monotonic_us() < end:
            if not len(self.queue) and not self.in_flight:
                return
            await asyncio.sleep(0.02)
        if len(self.queue) or self.in_flight:
            self.app.emit(
                proto.log(
                    "warn",
                    "grace period over; %d chunks dropped" % (len(self.queue) + self.in_flight),
                )
            )

    async def producer(self):
        hal = self.hal
        k = 0
        while True:
            off = k * self.period_num // self.period_den
            if self.duration_us is not None and off >= self.duration_us:
                return
            due = self.t0_us + off
            wait = due - hal.monotonic_us()
            if wait > 0:
                await asyncio.sleep(wait / 1e6)
            seq = self.app.next_seq()
            data = None
            if self.mic is not None:
                n = await self.mic.readinto(self.mic_buf)
                data = bytes(self.mic_buf[:n])
            self.queue.push(buffer.Chunk(seq, due, self.cfg["chunk_bytes"], data))
            self.stats.produced += 1
            self.wake.set()
            k += 1

    def body_parts(self, c):
        if c.data is not None:
            return [c.data]
        return self.app.bank().parts(c.seq, c.nbytes)

    async def sender(self, client):
        app = self.app
        fails = 0
        while True:
            c = self.queue.pop()
            if c is None:
                if not self.producing:
                    return
                self.wake.clear()
                await self.wake.wait()
                continue
            if not app.network_ready():
                self.queue.requeue(c)
                await app.wait_network(1.0)
                continue
            self.in_flight += 1
            try:
                ok, retry = await self.attempt(client, c)
            finally:
                self.in_flight -= 1
            if ok:
                fails = 0
                continue
            fails += 1
            if retry and c.attempts <= self.cfg["retries"]:
                self.stats.retried += 1
                self.queue.requeue(c)
            else:
                self.queue.dropped += 1
            await asyncio.sleep(self.backoff.delay_ms(fails) / 1000)

    async def attempt(self, client, c):
        """One HTTP request for chunk c. -> (ok, worth_retrying)."""
        hal = self.hal
        c.attempts += 1
        headers = self.headers + [("X-Sequence", str(c.seq))]
        parts = self.body_parts(c)
        t0 = hal.monotonic_us()
        status = 0
        err = None
        dup = False
        try:
            resp = await client.request("POST", headers, parts, c.nbytes)
            status = resp.status
            if status < 200 or status >= 300:
                err = "HTTP %d %s" % (status, resp.reason)
            else:
                dup = resp.duplicate
        except Exception as e:
            err = _err_text(e)
        t1 = hal.monotonic_us()
        st = self.stats
        st.sent += 1
        ok = err is None
        if ok:
            # A duplicate answer is a delivery: an earlier attempt of this X-Sequence reached the
            # server and only its answer was lost, so the ledger holds the chunk exactly once.
            st.ok += 1
            st.bytes_sent += c.nbytes
            if dup:
                st.duplicates += 1
        else:
            st.failed += 1
            if status == CONFLICT:
                st.conflicts += 1  # the same body would be refused again: not retried
        item = proto.result_item(
            c.seq, c.attempts, t0, t0 - c.sched_us, status, t1 - t0, c.nbytes, err, dup
        )
        if self.batch:
            self.pending.append(item)
            if len(self.pending) >= RESULT_BATCH_MAX:
                self.flush()
        else:
            self.app.emit(proto.result(item))
        retry = status == 0 or status == 408 or status == 429 or status >= 500
        return ok, retry

    def flush(self):
        if self.pending:
            items = self.pending
            self.pending = []
            self.app.emit(proto.results(items))

    async def flusher(self):
        while True:
            await asyncio.sleep(RESULT_FLUSH_MS / 1000)
            self.flush()


class App:
    def __init__(self, hal):
        self.hal = hal
        self.cfg, self.cfg_warning = config.load(hal)
        self.stats = Stats()
        self.seq = 0
        self.run = None
        self.run_task = None
        self.run_id = 0
        self.wifi_task = None
        self.wifi_state = "off"
        self.wifi_up = asyncio.Event()
        self.exiting = False
        self._bank = None
        self._bank_key = None
        self.boot_us = hal.monotonic_us()
        self.mic = None
        # The memory plan (mem.py): the run's long-lived buffers are made now, at boot, before
        # anything fragments the heap; `start` re-checks and reuses them.
        self.pool = mem.Pool()
        try:
            synth.sine_table()
            self.pool.fit(self.cfg)
        except MemoryError:
            self.pool = mem.Pool()
            self.cfg_warning = "the stored config does not fit the heap; start will refuse it"
        self._track_pool()

    # -- helpers ---------------------------------------------------------------------------
    def _track_pool(self):
        track = getattr(self.hal, "track_pool", None)  # a host HAL's heap model counts it
        if track is not None:
            track(self.pool)

    def emit(self, obj):
        try:
            self.hal.write_line(proto.encode(obj))
        except Exception:
            pass  # a host that stopped reading must not stop the uploads

    def device_id(self):
        d = self.cfg["device_id"]
        if d:
            return d
        uid = self.hal.unique_id()
        return "esp32-" + "".join("%02x" % b for b in uid[-3:])

    def seed(self):
        s = self.cfg["seed"]
        return s if s is not None else synth.device_seed(self.device_id())

    def _bank_stale(self):
        cfg = self.cfg
        key = (self.seed(), cfg["sample_rate"], cfg["line_hz"], cfg["bank_bytes"])
        if self._bank_key == key and self._bank.buf is self.pool.bank_buf:
            return None
        return key

    def bank(self):
        key = self._bank_stale()
        if key is not None:
            self._bank = None  # free the old one before rendering the new one
            s = synth.Synth(key[0], key[1], key[2])
            self._bank = synth.Bank(s, key[3], self.pool.bank_buf)
            self._bank_key = key
        return self._bank

    async def render_bank(self):
        """Render the bank into the pool's buffer in small pieces, yielding between them: the
        console stays responsive, and the synth's integer temporaries are collected as it goes
        (a piece's garbage stays far below the free heap, even at 110 KB)."""
        key = self._bank_stale()
        if key is None:
            return
        self._bank = self._bank_key = None
        s = synth.Synth(key[0], key[1], key[2])
        bank = synth.Bank(s, key[3], self.pool.bank_buf, render=False)
        mv = memoryview(bank.buf)
        n = len(mv)
        off = 0
        while off < n:
            end = off + RENDER_PIECE if off + RENDER_PIECE < n else n
            s.render(mv[off:end])
            off = end
            await asyncio.sleep(0)
        self._bank = bank
        self._bank_key = key

    def next_seq(self):
        s = self.seq
        self.seq += 1
        return s

    def network_ready(self):
        return not self.cfg["wifi_ssid"] or self.wifi_up.is_set()

    async def wait_network(self, timeout_s):
        try:
            await http.within(self.wifi_up.wait(), timeout_s)  # keeps a stop's cancel
        except asyncio.TimeoutError:
            pass

    def counters(self):
        d = self.stats.as_dict()
        q = self.run.queue if self.run is not None else None
        d["dropped"] = q.dropped if q is not None else 0
        d["buffered"] = len(q) if q is not None else 0
        return d

    def running(self):
        return self.run_task is not None and not self.run_task.done()

    # -- main loop -------------------------------------------------------------------------
    async def main(self, lines=None):
        self.emit(self.hello_msg(None))
        if self.cfg_warning:
            self.emit(proto.log("warn", self.cfg_warning))
        self.start_wifi()
        try:
            if lines is None:
                lines = self.hal
            if hasattr(lines, "readline"):
                fails = 0
                while not self.exiting:
                    try:
                        line = await lines.readline()
                    except Exception as e:  # e.g. MemoryError: the console must not end the app
                        fails += 1
                        self.emit(proto.error(None, "internal", "console: " + _err_text(e)))
                        await asyncio.sleep(0.01 * (fails if fails < 100 else 100))
                        continue
                    fails = 0
                    if not line:
                        break
                    await self.handle(line)
            else:
                async for line in lines:
                    await self.handle(line)
                    if self.exiting:
                        break
        finally:
            await self.shutdown()

    async def shutdown(self):
        for t in (self.run_task, self.wifi_task):
            if t is not None and not t.done():
                t.cancel()
                try:
                    await t
                except BaseException:
                    pass
        self.run_task = self.wifi_task = None

    async def handle(self, line):
        mid = None
        try:
            msg = proto.parse(line)
            mid = msg["id"]
            t = msg["t"]
            if t == "hello":
                self.emit(self.hello_msg(mid))
            elif t == "config":
                self.cmd_config(msg)
            elif t == "start":
                await self.cmd_start(msg)
            elif t == "stop":
                await self.cmd_stop(msg)
            elif t == "status":
                self.emit(self.status_msg(mid))
            elif t == "ping":
                self.emit(
                    proto.ok(
                        mid, cmd="ping", token=msg.get("token"), board_us=self.hal.monotonic_us()
                    )
                )
            elif t == "exit":
                self.exiting = True
                self.emit(proto.ok(mid, cmd="exit"))
        except proto.ProtoError as e:
            self.emit(proto.error(e.id if e.id is not None else mid, e.code, e.msg))
        except Exception as e:  # a bug must cost one reply, never the board
            self.emit(proto.error(mid, "internal", _err_text(e)))

    def hello_msg(self, mid):
        hal = self.hal
        return {
            "t": "hello",
            "id": mid,
            "fw": proto.FW_VERSION,
            "proto": proto.VERSION,
            "chip": hal.chip(),
            "mac": hal.mac(),
            "uid": "".join("%02x" % b for b in hal.unique_id()),
            "micropython": hal.platform(),
            "device_id": self.device_id(),
            "wifi_key_set": bool(self.cfg["wifi_key"]),
        }

    def status_msg(self, mid):
        d = {
            "t": "status",
            "id": mid,
            "running": self.running(),
            "run": self.run_id,
            "seq": self.seq,
            "wifi": self.wifi_state,
            "wifi_info": self.hal.wifi_info(),
            "uptime_us": self.hal.monotonic_us() - self.boot_us,
            "mem_free": self.hal.mem_free(),
            "wifi_key_set": bool(self.cfg["wifi_key"]),
        }
        d.update(self.counters())
        return d

    # -- commands --------------------------------------------------------------------------
    def cmd_config(self, msg):
        mid = msg["id"]
        if self.running():
            raise proto.ProtoError("busy", "stop the run before changing the config", mid)
        fields = {}
        for k in msg:
            if k not in ("t", "id", "v", "persist", "reset"):
                fields[k] = msg[k]
        clean = config.check(fields, mid)
        new = config.defaults() if msg.get("reset") else dict(self.cfg)
        new.update(clean)
        cap = self.hal.mem_total()
        if cap is not None:
            total, parts = mem.need(new, mem.batch_items(True))  # the rate comes with start
            if total > cap:
                raise proto.ProtoError(
                    "bad_config",
                    "does not fit: a run needs %d bytes (%s), the heap holds %d"
                    % (total, parts, cap),
                    mid,
                )
        wifi_changed = (
            new["wifi_ssid"] != self.cfg["wifi_ssid"] or new["wifi_key"] != self.cfg["wifi_key"]
        )
        self.cfg = new
        if msg.get("persist", True):
            try:
                config.save(self.hal, new)
            except Exception as e:
                raise proto.ProtoError("fs", "config applied but not saved: " + _err_text(e), mid)
        if wifi_changed:
            self.start_wifi()
        self.emit(proto.ok(mid, cmd="config", config=config.public(new)))

    async def cmd_start(self, msg):
        mid = msg["id"]
        if self.running():
            raise proto.ProtoError("busy", "already running; stop first", mid)
        if not self.cfg["target"]:
            raise proto.ProtoError("no_target", "configure a target URL first", mid)
        try:
            http.parse_url(self.cfg["target"])
        except http.HttpError as e:
            raise proto.ProtoError("bad_config", str(e), mid)
        rate = msg.get("rate")
        interval = msg.get("interval_s")
        if (rate is None) == (interval is None):
            raise proto.ProtoError("bad_start", "give exactly one of rate and interval_s", mid)
        if rate is not None:
            if not proto.is_num(rate) or rate < 0.001 or rate > 1000:
                raise proto.ProtoError("bad_start", "rate must be in [0.001, 1000] per second", mid)
            period = (1000000000, int(rate * 1000 + 0.5))  # rate in milli-chunks per second
        else:
            if not proto.is_num(interval) or interval < 0.001:
                raise proto.ProtoError("bad_start", "interval_s must be >= 0.001", mid)
            period = (int(interval * 1e6 + 0.5), 1)
        duration = msg.get("duration_s")
        if duration is not None and (not proto.is_num(duration) or duration <= 0):
            raise proto.ProtoError("bad_start", "duration_s must be > 0", mid)
        grace = msg.get("grace_s", 5)
        if not proto.is_num(grace) or grace < 0:
            raise proto.ProtoError("bad_start", "grace_s must be >= 0", mid)
        seq = msg.get("seq", 0)
        if not proto.is_int(seq) or seq < 0 or seq >= SEQ_LIMIT:
            raise proto.ProtoError("bad_start", "seq must be an integer in [0, 2**31)", mid)
        start_at = msg.get("start_at_us")
        delay = msg.get("delay_s")
        if start_at is not None and delay is not None:
            raise proto.ProtoError("bad_start", "give start_at_us or delay_s, not both", mid)
        if start_at is not None and not proto.is_int(start_at):
            raise proto.ProtoError("bad_start", "start_at_us must be an integer (board clock)", mid)
        if delay is not None and (not proto.is_num(delay) or delay < 0):
            raise proto.ProtoError("bad_start", "delay_s must be >= 0", mid)
        await self.check_memory(mid, 1e6 * period[1] / period[0] > self.cfg["batch_above_rps"])
        self.mic = None
        if self.cfg["source"] == "synth":
            await self.render_bank()  # now (seconds on a board), before the clock starts
        else:
            c = self.cfg
            try:
                self.mic = self.hal.i2s_open(
                    c["sample_rate"], c["i2s_id"], c["i2s_sck"], c["i2s_ws"], c["i2s_sd"]
                )
            except Exception as e:
                raise proto.ProtoError(
                    "no_i2s", "cannot open the I2S microphone: " + _err_text(e), mid
                )
        now = self.hal.monotonic_us()
        if start_at is not None:
            t0 = start_at
        else:
            t0 = now + int((delay or 0) * 1e6)
        self.run_id += 1
        if seq > self.seq:  # a host restarting a board that rebooted: past what it sent before
            self.seq = seq
        dur_us = int(duration * 1e6) if duration is not None else None
        self.stats = Stats()
        self.run = Run(self, period, dur_us, t0, int(grace * 1e6), self.run_id)
        self.run_task = asyncio.create_task(self.run.main())
        self.emit(
            proto.ok(
                mid,
                cmd="start",
                run=self.run_id,
                t0_us=t0,
                interval_us=self.run.interval_us,
                now_us=now,
                batch=self.run.batch,
            )
        )

    async def check_memory(self, mid, batch):
        """Refuse a start that would not fit the heap, with the figures (see mem.py)."""
        cfg = self.cfg
        total, parts = mem.need(cfg, mem.batch_items(batch))
        held = self.pool.reserved_for(cfg)
        free = self.hal.mem_free()
        if free is not None:
            free += self.pool.releasable(cfg)  # the old bank goes before the new one is made
        if free is not None and total - held > free:
            raise proto.ProtoError(
                "bad_config",
                "does not fit: a run needs %d bytes (%s), %d free + %d held; lower bank_bytes, "
                "concurrency or chunk_bytes" % (total, parts, free, held),
                mid,
            )
        if self.pool.release(cfg):
            self._bank = self._bank_key = None
            await asyncio.sleep(0)  # let the old bank be collected before the new one is made
        try:
            self.pool.fit(cfg)
        except MemoryError:
            self.pool = mem.Pool()
            self._track_pool()
            self._bank = self._bank_key = None
            raise proto.ProtoError(
                "bad_config",
                "does not fit: no %d-byte block for the run's buffers (%s)" % (total, parts),
                mid,
            )

    async def cmd_stop(self, msg):
        mid = msg["id"]
        was = self.running()
        if was:
            self.run_task.cancel()
            try:
                await self.run_task
            except BaseException:
                pass
        d = proto.ok(mid, cmd="stop", was_running=was)
        d.update(self.counters())
        self.emit(d)

    # -- Wi-Fi -----------------------------------------------------------------------------
    def start_wifi(self):
        if self.wifi_task is not None and not self.wifi_task.done():
            self.wifi_task.cancel()
        self.wifi_up.clear()
        self.wifi_task = asyncio.create_task(self.wifi_loop())

    def _set_wifi(self, state):
        if state != self.wifi_state:
            self.wifi_state = state
            self.emit({"t": "log", "level": "info", "msg": "wifi " + state, "wifi": state})
        if state == "up":
            self.wifi_up.set()
        else:
            self.wifi_up.clear()

    async def wifi_loop(self):
        """Keeps the station connected: connect, watch, reconnect with backoff when it drops."""
        hal = self.hal
        fails = 0
        backoff = buffer.Backoff(1000, 2, 30000)
        ssid = self.cfg["wifi_ssid"]
        if not ssid:
            self._set_wifi("none")
            while True:  # still read the clock now and then: a board's ticks_us wraps
                hal.monotonic_us()
                await asyncio.sleep(60)
        while True:
            hal.monotonic_us()  # keeps a wrapping board clock extended
            if hal.wifi_connected():
                self._set_wifi("up")
                fails = 0
                await asyncio.sleep(0.5)
                continue
            if self.wifi_state == "up":
                self._set_wifi("down")
            self._set_wifi("connecting")
            try:
                ok = await hal.wifi_connect(ssid, self.cfg["wifi_key"], 15)
            except Exception as e:
                ok = False
                self.emit(proto.log("warn", "wifi connect failed: " + _err_text(e)))
            if ok:
                self._set_wifi("up")
                fails = 0
                continue
            fails += 1
            self._set_wifi("down")
            await asyncio.sleep(backoff.delay_ms(fails) / 1000)


def backoff_cap_ms(cfg, interval_us):
    """The longest wait between retries: at most half the time the queue covers.

    With the defaults (8 chunks at 1 per second) a cap of backoff_max_ms = 8 s let one wait
    outlast the whole queue, so after an outage every queued chunk was dropped before the next
    retry; half the span leaves at least two retries before the oldest chunk is pushed out.
    """
    span_ms = cfg["buffer_chunks"] * interval_us // 1000
    cap = cfg["backoff_max_ms"]
    if span_ms // 2 < cap:
        cap = span_ms // 2
    if cap < cfg["backoff_ms"]:
        cap = cfg["backoff_ms"]
    return cap


async def run(hal, lines=None):
    """Run the app until `exit`, end of input, or cancellation (see hal_host for the contract)."""
    await App(hal).main(lines)


def main():
    """Board entry point (main.py): the ESP32 HAL, Ctrl-C disabled so 0x03 in data is harmless."""
    from . import hal_esp32

    hal = hal_esp32.Esp32Hal()
    hal.kbd_intr(False)
    try:
        asyncio.run(run(hal))
    finally:
        hal.kbd_intr(True)

"""devices.csv without the fleet's rows in memory (issue 12's bench: 1,000,000 idle devices
across workers in <= 1 GB).

Before, each worker pickled every row of its segment into its final message and the
coordinator sorted the merged rows in one list before writing the file (443 MiB at peak for
1,000,000 devices); a one-process run made a list of every row too. Now rows are made as the
file is written: a worker writes its rows to a part file and the coordinator merges the parts.
The coordinator's memory is measured with tracemalloc (it is this process; workers are not).
"""

from __future__ import annotations

import csv
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from scfleet import api

IDLE = (
    '[scenarios.a]\nexecutor = "constant-arrival-rate"\nrate = 2\nduration = "1s"\n'
    'pre_allocated_devices = {n}\nmax_devices = {n}\ngraceful_stop = "2s"\n'
    '[scenarios.a.device]\nkind = "iot_upload"\nchunk_bytes = 100\nid_pattern = "a-{{n:06d}}"\n'
    '[scenarios.b]\nexecutor = "constant-arrival-rate"\nrate = 2\nduration = "1s"\n'
    'pre_allocated_devices = 7\ngraceful_stop = "2s"\n'
    '[scenarios.b.device]\nkind = "iot_upload"\nchunk_bytes = 100\nid_pattern = "b,\\"{{n}}"\n'
    "[audio]\nprofiles = 2\nseconds = 2\n"
)


@pytest.fixture
def url(http_sink: Callable[..., str]) -> str:
    return http_sink()


def _peak(tmp_path: Path, url: str, n: int, workers: int) -> tuple[int, list[list[str]]]:
    """The traced peak of this process over a run of ``n`` idle devices; devices.csv."""
    cfg_path = tmp_path / f"idle-{n}-{workers}.toml"
    cfg_path.write_text(IDLE.format(n=n))
    cfg = api.load(cfg_path)
    out = tmp_path / f"run-{n}-{workers}"
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        outcome = api.run(cfg, target=url, out=out, workers=workers, overwrite=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.exit_code == 0
    with open(out / "devices.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    return peak, rows


@pytest.mark.slow  # ~30 s: two runs of 40,500 devices
@pytest.mark.parametrize("workers", [1, 2])
def test_device_rows_are_not_held_as_a_list(tmp_path: Path, url: str, workers: int) -> None:
    small, _ = _peak(tmp_path, url, 500, workers)  # imports and set-up happen here first
    small, _ = _peak(tmp_path, url, 500, workers)
    big, rows = _peak(tmp_path, url, 40_500, workers)
    per_device = (big - small) / 40_000
    print(f"workers={workers}: {per_device:.0f} B per device at the coordinator's peak")
    # every device once, in scenario order then by index, as a one-process run writes them
    assert rows[0][:3] == ["scenario", "kind", "device_id"]
    ids = [r[2] for r in rows[1:]]
    assert ids == [f"a-{i:06d}" for i in range(1, 40_501)] + [f'b,"{i}' for i in range(1, 8)]
    assert sum(int(r[3]) for r in rows[1:]) == 4  # 2 requests per scenario
    if workers == 1:
        # the devices themselves live here (~140 B each); their rows are made as written
        # (before: + a DeviceRow per device in one list: 383 B) and an idle device holds no
        # ID string (before: formatted for every device at start: 196 B)
        assert per_device < 170
    else:
        # the coordinator holds no device (before: every row, unpickled and sorted)
        assert per_device < 40


def test_rows_a_remote_worker_sends_are_spilled_and_merged_in_order() -> None:
    """Workers on other machines (Ray) send their rows in their final message: the
    coordinator writes each to a part as it arrives and keeps only the count."""
    import asyncio

    from simulator.run.device_row import DeviceRow
    from simulator.run.workers import Final, WorkerPool

    cfg = api.load(Path(__file__).resolve().parents[2] / "configs" / "smoke.toml")
    pool = WorkerPool(cfg, "http://10.0.0.5:1", {}, 2)
    pool._changed, pool._ticked = asyncio.Event(), asyncio.Event()

    def row(i: int) -> DeviceRow:
        return DeviceRow("iot_upload", "virtual", f'd,"{i}', i, i, 0, i + 1, 10 * i, 0)

    pool._receive(
        1, Final(1, (("iot_upload", 3, row(3)), ("iot_upload", 1, row(1))), (), None, False)
    )
    pool._receive(
        0, Final(0, (("iot_upload", 2, row(2)), ("iot_upload", 0, row(0))), (), None, False)
    )
    assert all(not f.devices for f in pool._finals.values())  # nothing held here
    rows = pool.device_rows()
    assert len(rows) == 4 and list(rows) == [row(i) for i in range(4)]
    assert list(rows) == [row(i) for i in range(4)]  # read again: the parts stay


@pytest.mark.slow  # 2 workers writing parts, ~3 s: the fast tier stays under 60 s
def test_devices_csv_is_written_without_a_row_per_device(tmp_path: Path, url: str) -> None:
    """1,000,000 rows took most of a 26.6 s run (quiet; 77-120 s busy): the coordinator read
    each worker's part line into a DeviceRow and wrote it back through ``csv`` (~19 Python
    calls per device). Now a part line is the finished line led by a sort key; the only
    Python frames run once per device are the merge's. The file is byte for byte a
    one-process run's, which is byte for byte what the csv module writes for its rows."""
    import cProfile
    import pstats

    from simulator.report.output import write_run_model

    n = 6000
    cfg_path = tmp_path / "idle.toml"
    cfg_path.write_text(IDLE.format(n=n))
    cfg = api.load(cfg_path)
    files = {}
    for workers in (1, 2):
        outcome = api.run(cfg, target=url, out=tmp_path / f"w{workers}", workers=workers)
        assert outcome.exit_code == 0
        files[workers] = (tmp_path / f"w{workers}" / "devices.csv").read_bytes()
    rows = list(outcome.result.devices)  # the workers' rows, parsed back from their parts
    assert len(rows) == n + 7
    with open(tmp_path / "reference.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(files[1].split(b"\r\n")[0].decode().split(","))
        w.writerows(r.cells(("scenario", "kind", "device_id", *r.__slots__[3:9])) for r in rows)
    assert files[2] == files[1] == (tmp_path / "reference.csv").read_bytes()

    prof = cProfile.Profile()
    prof.runcall(write_run_model, outcome.result, tmp_path / "again", {})
    root = str(Path(__file__).resolve().parents[2])
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    per_device = {  # Python frames of scfleet's, of dataclasses' __init__ and of heapq's
        f"{path}:{name}": calls
        for (path, _line, name), (_cc, calls, *_rest) in stats.items()
        if calls >= n and (path.startswith((root, "<string>")) or path.endswith("heapq.py"))
    }
    assert (tmp_path / "again" / "devices.csv").read_bytes() == files[2]
    # before: DeviceRow.__init__, cells, its list, _read_part, merge, _key, two generators
    assert sum(per_device.values()) <= 2 * (n + 7) + 10, per_device
    assert not any(name.endswith((":cells", ":__init__", ":_key")) for name in per_device)


@pytest.mark.parametrize("kind", ["virtual", 'py,"th%on:a.py:A', "physical"])
def test_formatted_lines_are_what_the_csv_module_writes(tmp_path: Path, kind: str) -> None:
    """IDs and kinds with commas, quotes and '%': the lines written without the csv module
    (a one-process run's, a worker's part, a remote worker's spilled rows), with and without
    the board columns, are the csv module's bytes."""
    import io

    from simulator.run.device_parts import PartRows, Scratch, key_format, write_lines, write_part
    from simulator.run.device_row import ALL_COLUMNS, VIRTUAL_COLUMNS
    from simulator.run.devices import ScenarioRows, VirtualDevice

    for pattern in ("a-{n:06d}", 'b,"{n}', "c{n:,}"):
        cls = VirtualDevice.for_scenario(pattern, 998)
        devices = [cls(i) for i in range(6)]
        for d in devices:
            d.requests, d.ok, d.failed, d.seq, d.bytes_ok = d.index, 1, 2, 3, 10**12
        rows = ScenarioRows("s-1", kind, devices, pattern)
        scratch = Scratch()
        parts = [(scratch.part(f"w{k}"), 0) for k in range(3)]
        parts[0] = (
            parts[0][0],
            write_lines(parts[0][0], rows.part_lines(key_format(0), devices[::2])),
        )
        parts[1] = (
            parts[1][0],
            write_lines(parts[1][0], rows.part_lines(key_format(0), devices[1::2])),
        )
        merged = PartRows(scratch, parts)
        spilled = PartRows(
            scratch,
            [
                (
                    scratch.part("r"),
                    write_part(scratch.part("r"), ((0, d.index, rows.row(d)) for d in devices)),
                )
            ],
        )
        for columns in (VIRTUAL_COLUMNS, ALL_COLUMNS):
            buf = io.StringIO(newline="")
            csv.writer(buf).writerows(rows.row(d).cells(columns) for d in devices)
            want = buf.getvalue()
            assert "".join(rows.csv_lines(columns)) == want, pattern
            assert "".join(merged.csv_lines(columns)) == want, pattern
            assert "".join(spilled.csv_lines(columns)) == want, pattern
        assert list(merged) == list(spilled) == [rows.row(d) for d in devices]


@pytest.mark.slow  # two subprocess runs with 2 workers each
def test_a_killed_coordinators_scratch_folder_goes_with_the_next_run(
    tmp_path: Path, url: str
) -> None:
    """SIGKILL of ``scfleet run`` once its workers' parts are in, before ``devices.csv`` is
    written (the test hook): nothing can clean up then, and the scratch folder stayed in TMPDIR
    for good (before). Now its lock dies with it and the next run with workers removes it; a
    living run's folder (its lock held) and one without a lock are left alone."""
    import fcntl
    import os
    import subprocess
    import sys

    from simulator.run.device_parts import KILL_ENV, PREFIX

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cfg = tmp_path / "idle.toml"
    cfg.write_text(IDLE.format(n=50))
    env = {**os.environ, "TMPDIR": str(tmp)}

    def run(out: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        args = ["run", str(cfg), "--target", url, "--out", str(tmp_path / out), "--quiet"]
        return subprocess.run(
            [sys.executable, "-m", "scfleet", *args, "--workers", "2"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=150,
        )

    killed = run("killed", {KILL_ENV: "1"})
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "killed" / "devices.csv").exists()
    stale = list(tmp.glob(PREFIX + "*"))
    assert len(stale) == 1 and len(list(stale[0].glob("*.csv"))) == 2  # both parts, left

    live = tmp / f"{PREFIX}living"
    live.mkdir()
    (tmp / f"{PREFIX}unlocked").mkdir()
    with open(live / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        again = run("again", {})
        assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in tmp.glob(PREFIX + "*")) == [
        f"{PREFIX}living",
        f"{PREFIX}unlocked",
    ]
    assert (tmp_path / "again" / "devices.csv").read_bytes().count(b"\r\n") == 58


def test_an_older_versions_folder_without_a_lock_goes_once_it_is_old(tmp_path: Path) -> None:
    """Folders of versions before the lock have no ``.lock`` and stayed for good (before: a
    sweep skipped every folder without one). Now one goes once neither it nor anything in
    it has changed for UNLOCKED_STALE_AGE; a younger one (being made, or a living older run's)
    is left, so is a link, and a killed run's folder (free lock) still goes."""
    import os
    import time

    from simulator.run.device_parts import LOCK, PREFIX, UNLOCKED_STALE_AGE, sweep_stale

    old = time.time() - UNLOCKED_STALE_AGE - 60

    def folder(name: str, *, lock: bool = False, aged: bool = True, file_aged: bool = True) -> Path:
        path = tmp_path / f"{PREFIX}{name}"
        path.mkdir()
        (path / "worker-1.csv").write_text("row\n")
        if lock:
            (path / LOCK).write_text("")
        if file_aged:
            for entry in path.iterdir():
                os.utime(entry, (old, old))
        if aged:
            os.utime(path, (old, old))
        return path

    folder("older-version")
    folder("killed", lock=True, aged=False, file_aged=False)
    young = folder("young", aged=False, file_aged=False)
    written = folder("written-lately", file_aged=False)  # an older run's worker just ended
    target = folder("elsewhere")  # not of the kind: only reached through the link
    target.rename(tmp_path / "elsewhere")
    (tmp_path / f"{PREFIX}link").symlink_to(tmp_path / "elsewhere")
    removed = sweep_stale(str(tmp_path))
    assert sorted(p.name for p in removed) == [f"{PREFIX}killed", f"{PREFIX}older-version"]
    assert sorted(p.name for p in tmp_path.glob(PREFIX + "*")) == sorted(
        [f"{PREFIX}link", young.name, written.name]
    )
    assert (tmp_path / "elsewhere" / "worker-1.csv").exists()


@pytest.mark.slow  # a one-process run, ~2 s
def test_a_one_process_run_sweeps_killed_runs_scratch_folders(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a run with workers swept (before: a user running with ``--workers 1`` kept a
    killed run's folder for good). Now every run does, at its start."""
    import tempfile

    from simulator.run.device_parts import LOCK, PREFIX

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    stale = tmp / f"{PREFIX}killed"
    stale.mkdir()
    (stale / LOCK).write_text("")  # its holder is gone: the lock is free
    (stale / "worker-1.csv").write_text("row\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    cfg_path = tmp_path / "idle.toml"
    cfg_path.write_text(IDLE.format(n=5))
    outcome = api.run(api.load(cfg_path), target=url, out=tmp_path / "run", workers=1)
    assert outcome.exit_code == 0
    assert not stale.exists()

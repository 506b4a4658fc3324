"""Three of k6 1.1.0's behaviours the README states, held against k6 itself on loopback, with
scfleet's side of each (README "What a run measures", "Scenario files"):

1. constant-arrival-rate also starts the start due at the end itself: 5/s for 1 s is 6
   iterations in k6, 5 in scfleet (a difference kept by choice and said).
2. A bare-number duration is milliseconds in k6 (``duration: 1000`` and ``"1000"`` run 1 s,
   as ``"1s"``), seconds in scfleet (``duration = 1`` is 1 s): said, write the unit.
3. The bytes a request cut in flight by a graceful stop had written are in k6's data_sent
   (at least its body: 64,105 for a 64,000-byte upload, by hand). scfleet counted none of them (data_sent 0, every
   case below: looping VU and arrival, the fast path and a Python device, both transports);
   it counts what the transport had written, in no other figure.

Each run is a second or two.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from answering import answering
from k6_side import needs_k6, run_k6

from scfleet import api

pytestmark = pytest.mark.slow


# An arrival-rate schedule's arrivals are started or dropped (no free VU, or in scfleet reached
# late): a loaded machine drops some in either tool (k6 1.1.0 here under two busy loops: 5
# iterations and 1 dropped, its iteration_duration max 13 ms), so a schedule's length is their sum.
DROPPED = "dropped_iterations"
SCHEDULED = "started_or_dropped"


def _k6_iterations(scenario: str, url: str, tmp: Path, body: int = 64) -> dict[str, float]:
    script = (
        "import http from 'k6/http';\n"
        f"export const options = {{ scenarios: {{ up: {scenario} }} }};\n"
        f"export default function () {{ http.post('{url}/up', 'x'.repeat({body})); }}\n"
    )
    tmp.mkdir(exist_ok=True)
    code, summary = run_k6(script, tmp, summary_required=True)
    assert code == 0, summary
    m = summary["metrics"]
    counts = {k: m[k]["count"] if k in m else 0 for k in ("iterations", "data_sent", DROPPED)}
    return {**counts, SCHEDULED: counts["iterations"] + counts.pop(DROPPED)}


def _scfleet(
    scenario: str, url: str, tmp: Path, body: int = 64, kind: str = ""
) -> dict[str, float]:
    tmp.mkdir(exist_ok=True)
    head, _, tail = scenario.partition("\n[target]")  # the device table belongs to the scenario
    (tmp / "s.toml").write_text(
        "[scenarios.up]\n"
        + head
        + f'\n[scenarios.up.device]\n{kind}\nendpoint = "/up"\nchunk_bytes = {body}\n'
        + (f"[target]{tail}\n" if tail else "")
    )
    out = api.run(api.load(tmp / "s.toml"), target=url, out=tmp / "r", workers=1)
    reg = out.result.registry
    counts = {k: reg.aggregate(k, {}, "count") or 0 for k in ("iterations", "data_sent")}
    return {**counts, SCHEDULED: counts["iterations"] + (reg.aggregate(DROPPED, {}, "count") or 0)}


CAR_TOML = """executor = "constant-arrival-rate"
rate = 5
time_unit = "1s"
duration = "{d}"
pre_allocated_devices = 2"""
CAR_K6 = "{{ executor: 'constant-arrival-rate', rate: 5, timeUnit: '1s', duration: {d}, preAllocatedVUs: 2 }}"


@needs_k6
def test_constant_arrival_rate_k6_starts_one_more_at_the_end(tmp_path: Path) -> None:
    with answering(200, 0.0) as url:
        ours = _scfleet(CAR_TOML.format(d="1s"), url, tmp_path / "sc")
        # k6 starts the one due at the end when its timer fires before the scenario's
        # context ends: every time on a quiet machine (21 of 21), not always on a loaded CI
        # machine, so up to 3 runs, and never more than one extra
        seen = []
        for n in range(3):
            seen.append(_k6_iterations(CAR_K6.format(d="'1s'"), url, tmp_path / f"k6-{n}"))
            if seen[-1][SCHEDULED] == 6:
                break
    assert ours[SCHEDULED] == 5
    assert [k[SCHEDULED] for k in seen][-1] == 6 and all(k[SCHEDULED] in (5, 6) for k in seen), seen


@needs_k6
@pytest.mark.parametrize("bare", ["1000", "'1000'"], ids=["number", "string"])
def test_k6_reads_a_bare_duration_as_milliseconds(bare: str, tmp_path: Path) -> None:
    with answering(200, 0.0) as url:
        k6 = _k6_iterations(CAR_K6.format(d=bare), url, tmp_path / "k6")
    # 1 s, as '1s' (1000 s would time the test out): 5 starts, and the one due at the end
    # on a machine quiet enough (above)
    assert k6[SCHEDULED] in (5, 6), k6


def test_scfleet_reads_a_bare_duration_as_seconds(tmp_path: Path) -> None:
    with answering(200, 0.0) as url:
        ours = _scfleet(CAR_TOML.replace('"{d}"', "1"), url, tmp_path)
    assert ours[SCHEDULED] == 5  # 1 s


CUT_VUS = """executor = "constant-vus"
vus = 1
duration = "1s"
graceful_stop = "0s\""""
CUT_ARRIVAL = """executor = "constant-arrival-rate"
rate = 1
duration = "1s"
pre_allocated_devices = 1
graceful_stop = "0s\""""
CUT_K6 = "{ executor: 'constant-vus', vus: 1, duration: '1s', gracefulStop: '0s' }"
BODY = 32_000  # the most a Python device's audio chunk may be


@needs_k6
def test_k6_counts_a_cut_requests_bytes_in_data_sent(tmp_path: Path) -> None:
    with answering(200, 1.5) as url:  # the one upload is cut at 1 s, unanswered
        k6 = _k6_iterations(CUT_K6, url, tmp_path, body=BODY)
    assert k6["iterations"] == 0 and k6["data_sent"] >= BODY


@pytest.mark.parametrize(
    ("scenario", "device", "transport"),
    [
        (CUT_VUS, "", "fast"),
        (CUT_VUS, "", "aiohttp"),
        (CUT_ARRIVAL, "", "fast"),
        (CUT_ARRIVAL + '\nthink_time = "1s"', "", "fast"),  # an iteration task, its waiter cut
        (CUT_VUS, 'kind = "python:simulator.builtin_devices:IotUpload"', "fast"),
        (CUT_ARRIVAL, 'kind = "python:simulator.builtin_devices:IotUpload"', "aiohttp"),
    ],
    ids=["vus", "vus-aiohttp", "arrival", "arrival-think", "python-vus", "python-arrival-aiohttp"],
)
def test_scfleet_counts_a_cut_requests_bytes_in_data_sent(
    scenario: str, device: str, transport: str, tmp_path: Path
) -> None:
    """The one upload is cut at 1 s, unanswered: its head and body were written, as k6's."""
    with answering(200, 1.5) as url:
        ours = _scfleet(
            f'{scenario}\n[target]\ntransport = "{transport}"',
            url,
            tmp_path,
            body=BODY,
            kind=device,
        )
    assert ours["iterations"] == 0
    assert BODY < ours["data_sent"] < BODY + 1000

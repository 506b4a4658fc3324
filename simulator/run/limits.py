"""The open-file limit a run needs, raised at start or refused in one line.

A device runs one request at a time, and a process's transport shares one pool of keep-alive
connections among all its devices: it opens a connection only when no idle one is free, so
it never holds more sockets than requests in flight at once (unlike k6, where each VU keeps
its own connections, so k6's descriptors grow with the VUs that have sent). Requests in flight
are bounded by the devices *in flight*, not the devices allocated: at most the peak device
need of the scenarios (k6's max possible VUs, :func:`device_plan`), and at most the
iterations a scenario can start at all (an iteration in flight is one that started;
``iteration_bound``: an arrival-rate schedule's planned iterations, a per-vu-iterations
scenario's VUs × iterations). So 1,000,000 pre-allocated devices at 1 iteration/s for 10 s
need 10 sockets, while 1,000,000 looping VUs need 1,000,000. Past the limit, connects fail
with "Too many open files" and the run collapses, so the soft limit is raised to that need
plus a margin (the loop, run-folder files, pipes, samplers) before anything starts; a need
above the hard limit is an error naming both numbers.
"""

from __future__ import annotations

from scfleet_core.errors import ScfleetError
from simulator.config import RunConfig
from simulator.executors import device_plan

#: descriptors besides the devices' sockets: event loop, run folder, pipes, samplers
MARGIN = 128


class OpenFileLimit(ScfleetError):
    """The run needs more open files than the hard limit allows (exit 103)."""


def files_needed(cfg: RunConfig, workers: int = 1) -> int:
    """Open files the busiest process of the run needs (with workers: the largest segment);
    the run's companions add theirs (``Companion.open_files``, :mod:`simulator.session`)."""
    if workers > 1:
        from simulator.run.workers import segment_config

        return max(files_needed(segment_config(cfg, k, workers)) for k in range(workers))
    from simulator.run.devices import warm_connections

    # connections opened before the start stay in the pool: more than the requests in flight
    # only when [run] warm_connections = N asks for more
    return max(connections_bound(cfg), warm_connections(cfg)) + MARGIN


def connections_bound(cfg: RunConfig) -> int:
    """The most requests (so connections) one process's scenarios can have in flight at once:
    the peak device need, and no more than the iterations each scenario can start."""
    by_iterations = 0
    for sc in cfg.scenarios:
        devices = sc.executor.device_bound()
        iterations = sc.executor.iteration_bound(sc.think_time)
        by_iterations += devices if iterations is None else min(devices, iterations)
    return min(device_plan(cfg.scenarios).possible, by_iterations)


def ensure_open_files(need: int) -> int:
    """Raise the soft RLIMIT_NOFILE to ``need`` if it is lower (worker processes inherit it);
    the limit now in force. :class:`OpenFileLimit` when the hard limit is below ``need``."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return need
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or need <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and need > hard:
        raise OpenFileLimit(
            f"this run needs {need} open files (one per request it may have in flight at once, "
            f"plus {MARGIN}) but the hard limit is {hard}: raise it (ulimit -Hn, systemd "
            "LimitNOFILE) or use fewer max_devices/VUs per process (--workers splits them)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need

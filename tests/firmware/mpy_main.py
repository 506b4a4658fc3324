# ruff: noqa: UP031  (MicroPython script)
# Entry script for mpy_run.mjs: runs every shared case under MicroPython, inside a task (the
# WebAssembly port's top-level coroutine cannot be resumed by asyncio.wait_for timeouts).
import sys

sys.path.insert(0, "/")

import asyncio  # noqa: E402

import shared_cases  # noqa: E402

print("MicroPython %d.%d.%d" % sys.implementation.version[:3])
finished = asyncio.Event()


async def main():
    try:
        await shared_cases.run_all()
    except BaseException as e:
        print("FAIL runner: %s: %s" % (type(e).__name__, e))
    finished.set()


asyncio.create_task(main())
await finished.wait()  # noqa: F704, PLE1142

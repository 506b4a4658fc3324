"""The smallest run the CLI and config tests write: scenario "up", 5 arrivals/s for 1 s over 2
devices; a test adds its device, thresholds or output lines after it. One home for the plan
those tests share, so a test's own lines are what it is about."""

from __future__ import annotations

SMALL_RUN = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 5
duration = "1s"
pre_allocated_devices = 2
"""

#: SMALL_RUN of the built-in upload device (further device keys may follow)
SMALL_UPLOAD = (
    SMALL_RUN
    + """[scenarios.up.device]
kind = "iot_upload"
"""
)

#: 10 uploads of 1,600 bytes in 1 s over 2 devices: the damaged-folder and config-input tests'
#: run (a short real run whose folder they then break or whose file they vary)
TEN_SMALL_UPLOADS = """
[scenarios.up]
executor = "constant-arrival-rate"
rate = 10
duration = "1s"
pre_allocated_devices = 2
[scenarios.up.device]
kind = "iot_upload"
chunk_bytes = 1600
"""

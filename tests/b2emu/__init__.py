"""B2 native-API emulator for the test suite and benchmarks (built on b2sdk's RawSimulator).

In-process: ``with B2Emulator(min_part_size=1000) as emu: ...`` (``emu.url``, ``emu.key_id``,
``emu.key``, ``emu.bucket_name``). In another process: ``python -m tests.b2emu --port 0``, or
:class:`EmulatorProcess`, controlled through :class:`EmulatorControl`. See README.md.
"""

from __future__ import annotations

from .control import EmulatorControl, EmulatorError, EmulatorProcess
from .core import ALL_CALLS, CALL_ALIASES, B2ApiError, EmulatorConfig
from .server import B2Emulator

__all__ = [
    "ALL_CALLS",
    "CALL_ALIASES",
    "B2ApiError",
    "B2Emulator",
    "EmulatorConfig",
    "EmulatorControl",
    "EmulatorError",
    "EmulatorProcess",
]

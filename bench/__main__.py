"""Run every benchmark: ``python -m bench`` from the repository root."""

from __future__ import annotations

import datetime as dt
import os
import platform

from bench import b1_read, b2_write, b3_runtime, b4_results, b5_nesting
from bench._common import postgres_version


def main() -> None:
    print(f"runview benchmarks, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {postgres_version()}")
    b1_read.main()
    b2_write.main()
    b3_runtime.main()
    b4_results.main()
    b5_nesting.main()


if __name__ == "__main__":
    main()

"""Running `pdp` commands as real processes for the end-to-end control-plane tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

PDP = [sys.executable, "-m", "pdp"]


@dataclass
class RunningProcess:
    """A `pdp` process started by a test, with where its output goes."""

    process: asyncio.subprocess.Process
    log: Path

    async def stop(self, grace: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        code = self.process.returncode
        assert code is not None
        return code

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log.read_text(errors="replace")


async def start(args: list[str], log: Path, *, cwd: Path,
                env: dict[str, str] | None = None) -> RunningProcess:
    """Start `pdp ARGS` with stdout and stderr into `log`, `env` added to the environment."""
    handle = log.open("wb")
    try:
        process = await asyncio.create_subprocess_exec(
            *PDP, *args, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    finally:
        handle.close()
    return RunningProcess(process, log)


async def wait_until_ready(url: str, running: RunningProcess, *, within: float = 20.0) -> None:
    """Poll `url` until it answers 200; fail with the process output if it never does."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if running.process.returncode is not None:
                raise AssertionError(f"process exited early:\n{running.output()}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready after {within}s:\n{running.output()}")


async def run_pdp(*args: str, cwd: Path, stdin: bytes | None = None,
                  env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `pdp ARGS` to completion, `env` added to the environment; return (exit code, stdout,
    stderr)."""
    process = await asyncio.create_subprocess_exec(
        *PDP, *args, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    except TimeoutError:
        # A command that never ends (a control plane that should have refused to start) must
        # not outlive its test.
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()

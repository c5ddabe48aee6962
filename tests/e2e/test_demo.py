"""``gatewayd demo`` as a user runs it: read the printed URL and token, send, see delivered."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import stat
import sys
from pathlib import Path

import aiohttp


async def test_demo_prints_url_and_token_and_delivers(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        "demo",
        "--data-dir",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--modems",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    printed: dict[str, str] = {}
    try:
        async with asyncio.timeout(30):
            while "token" not in printed:
                line = (await proc.stdout.readline()).decode()
                assert line, "the demo exited before printing its URL and token"
                key, sep, value = line.strip().partition(": ")
                if sep and key in ("url", "token"):
                    printed[key] = value
        url, token = printed["url"], printed["token"]
        assert url.startswith("http://127.0.0.1:")
        token_file = data / "api-token"
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert (data / "gatewayd.toml").exists()
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=auth) as session:
            body = {"to": "+34611111111", "text": "Tu pedido ha salido"}
            async with session.post(f"{url}/v1/messages", json=body) as r:
                assert r.status == 202
                message_id = (await r.json())["id"]
            # Sim latency 1.5-4 s, then a status report 2-5 s later.
            async with asyncio.timeout(30):
                while True:
                    async with session.get(f"{url}/v1/messages/{message_id}") as r:
                        if (await r.json())["status"] == "delivered":
                            break
                    await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(Exception):
            await proc.stdout.read()

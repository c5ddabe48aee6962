"""``gatewayd demo --nodes 3`` as a user runs it: three nodes on a throwaway PostgreSQL.

Posted through node-2, read back delivered through node-3; SIGTERM ends it in seconds and
leaves no PostgreSQL process and no cluster directory behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from gatewayd.demo import demo_nodes
from gatewayd.devpg import PostgresUnavailable
from tests.multinode.pgserver import require_postgres_binaries


def _postmaster(port: int) -> tuple[int, Path] | None:
    """The server listening on ``port`` (pid, cluster directory from its ``-k``), if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        words = [a.decode(errors="replace") for a in args]
        if "-p" in words and "-k" in words and words[words.index("-p") + 1] == str(port):
            return int(entry.name), Path(words[words.index("-k") + 1])
    return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def test_three_nodes_share_one_queue_and_stop_cleanly(tmp_path: Path) -> None:
    require_postgres_binaries()
    data = tmp_path / "demo"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        "demo",
        "--nodes",
        "3",
        "--data-dir",
        str(data),
        "--listen",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    printed: dict[str, str] = {}
    try:
        async with asyncio.timeout(60):
            while "database" not in printed:
                line = (await proc.stdout.readline()).decode()
                assert line, "the demo exited before printing its URLs"
                key, sep, value = line.strip().partition(": ")
                if sep and key in ("node-1", "node-2", "node-3", "token", "database"):
                    printed[key] = value
        urls = [printed[f"node-{k}"] for k in (1, 2, 3)]
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
        assert len(set(urls)) == 3
        assert printed["database"].startswith("postgresql://postgres@127.0.0.1:")
        assert (data / "api-token").read_text().strip() == printed["token"]
        pg_port = int(printed["database"].split()[0].rsplit(":", 1)[1].split("/")[0])
        server = _postmaster(pg_port)
        assert server is not None, "no PostgreSQL process serves the printed database"
        pg_pid, pg_root = server
        assert pg_root.is_dir()

        auth = {"Authorization": f"Bearer {printed['token']}"}
        async with aiohttp.ClientSession(headers=auth) as session:
            names = []
            for url in urls:
                async with session.get(f"{url}/v1/modems") as r:
                    body = await r.json()
                items = body.get("modems", body) if isinstance(body, dict) else body
                names.append(sorted(m["name"] for m in items))
            # Each node drives its own two modems; names are distinct across nodes.
            assert names == [["sim1", "sim2"], ["sim3", "sim4"], ["sim5", "sim6"]]
            body = {"to": "+34611111111", "text": "Tu pedido ha salido"}
            async with session.post(f"{urls[1]}/v1/messages", json=body) as r:
                assert r.status == 202
                message_id = (await r.json())["id"]
            # Sim latency 1.5-4 s, then a status report 2-5 s later; any node may send it.
            async with asyncio.timeout(40):
                while True:
                    async with session.get(f"{urls[2]}/v1/messages/{message_id}") as r:
                        assert r.status == 200
                        if (await r.json())["status"] == "delivered":
                            break
                    await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
        assert not _alive(pg_pid), "the demo left its PostgreSQL running"
        assert _postmaster(pg_port) is None
        assert not pg_root.exists(), "the demo left its cluster directory"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(Exception):
            await proc.stdout.read()


async def test_without_postgresql_the_demo_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> Path:
        raise PostgresUnavailable()

    monkeypatch.setattr("gatewayd.devpg.find_bindir", missing)
    out = io.StringIO()
    with pytest.raises(PostgresUnavailable, match="install Debian's postgresql"):
        await demo_nodes(tmp_path, "127.0.0.1:0", 1, 3, None, out)
    assert out.getvalue() == ""  # no banner
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)  # the demo took its handlers back

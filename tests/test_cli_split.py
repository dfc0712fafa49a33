"""``swarmstream context split``: a corpus over shards by token budget, as a user runs
it; the shards are registered, their contexts load, and citations stay true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import spawn, stop
from test_cli import cli, json_lines, one_line_error

from swarmstream import Settings, Swarm
from swarmstream.shard import MemoryShard

NEEDLE = "The vault code is 4417-ZETA."


def corpus(tmp_path: Path) -> Path:
    """Small documents and one large one (about 2,500 tokens) with a needle at line 150."""
    d = tmp_path / "corpus"
    d.mkdir()
    for i in range(6):
        (d / f"note{i}.md").write_text(f"# note {i}\n" + f"line of note {i}\n" * 40)
    lines = [f"filler line {n} of the long report, nothing to see\n" for n in range(1, 201)]
    lines[149] = NEEDLE + "\n"
    (d / "report.md").write_text("".join(lines))
    return d


async def contexts(settings: Settings, ids: list[str]) -> dict[str, str]:
    async with Swarm(settings) as swarm:
        out = {}
        for sid in ids:
            ctx = await MemoryShard(swarm, sid, "research").context()
            assert ctx is not None, sid
            at = ctx.text.find(NEEDLE)
            out[sid] = ctx.cite(at, at + len(NEEDLE)) if at >= 0 else ""
        return out


@pytest.mark.contract
async def test_split_by_shards(settings: Settings, tmp_path: Path) -> None:
    d = corpus(tmp_path)
    out = cli(
        settings, "context", "split", str(d), "--spec", "research", "--shards", "3",
        "--prefix", "kb", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json_lines(out.stdout)
    assert [r["shard"] for r in rows] == ["kb-1", "kb-2", "kb-3"]
    budget = rows[0]["budget"]
    assert isinstance(budget, int)
    assert all(isinstance(r["tokens"], int) and 0 < r["tokens"] <= budget for r in rows)
    total = sum(int(str(r["tokens"])) for r in rows)
    assert budget < total  # really split, by about a third each
    status = json.loads(cli(settings, "status", "--json").stdout)
    assert sorted(s["id"] for s in status["shards"]) == ["kb-1", "kb-2", "kb-3"]
    cited = await contexts(settings, ["kb-1", "kb-2", "kb-3"])
    [(holder, citation)] = [(s, c) for s, c in cited.items() if c]
    assert citation == "corpus/report.md:150", (holder, citation)


@pytest.mark.contract
async def test_split_by_max_tokens(settings: Settings, tmp_path: Path) -> None:
    d = corpus(tmp_path)
    out = cli(settings, "context", "split", str(d), "--spec", "research", "--max-tokens", "600")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    shards = [line.split(":")[0].removeprefix("shard ") for line in lines[:-1]]
    assert len(shards) >= 5 and shards[0] == "research-1"  # the prefix defaults to SPEC
    assert "of at most 600 tokens for spec research" in lines[-1]
    for line in lines[:-1]:
        tokens = int(line.rsplit("~", 1)[1].split()[0].replace(",", ""))
        assert tokens <= 600, line
    cited = await contexts(settings, shards)
    assert [c for c in cited.values() if c] == ["corpus/report.md:150"]
    # fewer shards over the same prefix: the leftovers are pointed out
    fewer = cli(settings, "context", "split", str(d), "--spec", "research", "--shards", "2")
    assert fewer.returncode == 0, fewer.stderr
    assert "from an earlier split are still registered" in fewer.stderr
    assert "context v2" in fewer.stdout  # research-1 got a new version


def test_split_then_ask_cites_the_line(settings: Settings, tmp_path: Path) -> None:
    d = corpus(tmp_path)
    split = cli(settings, "context", "split", str(d), "--spec", "research", "--shards", "4")
    assert split.returncode == 0, split.stderr
    worker = spawn(settings, ["research"], "retrieve")
    try:
        out = cli(settings, "ask", "What is the vault code?", "--deadline", "30")
    finally:
        stop(worker)
    assert out.returncode == 0, out.stderr
    assert "corpus/report.md:150" in out.stdout and "4417-ZETA" in out.stdout


def test_split_errors(settings: Settings, tmp_path: Path) -> None:
    d = corpus(tmp_path)
    split = ("context", "split", str(d), "--spec", "research")
    assert "one of them" in one_line_error(cli(settings, *split), 2)
    both = cli(settings, *split, "--shards", "2", "--max-tokens", "10")
    assert "one of them" in one_line_error(both, 2)
    assert "--shards must be 1 or more" in one_line_error(cli(settings, *split, "--shards", "0"), 2)
    zero = cli(settings, *split, "--max-tokens", "0")
    assert "--max-tokens must be 1 or more" in one_line_error(zero, 2)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blob.bin").write_bytes(b"\x00\x01")
    out = cli(settings, "context", "split", str(empty), "--spec", "r", "--shards", "2")
    assert "no text to split" in one_line_error(out, 2)
    missing = cli(
        settings, "context", "split", str(tmp_path / "nope"), "--spec", "r", "--shards", "2"
    )
    assert "not found" in one_line_error(missing, 2)
    bad = cli(settings, *split, "--shards", "2", "--prefix", "no spaces")
    assert "invalid shard prefix name" in one_line_error(bad, 2)


def test_a_tiny_corpus_makes_fewer_shards(settings: Settings, tmp_path: Path) -> None:
    one = tmp_path / "one.md"
    one.write_text("ab\n")  # one token
    out = cli(settings, "context", "split", str(one), "--spec", "research", "--shards", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("shard research-") == 1
    assert "made 1 shard(s), not 3" in out.stderr

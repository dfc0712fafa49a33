"""Create the peer frameworks' venvs from benchmarks/requirements-peers.txt.

    python3 benchmarks/peers/setup.py            # create or update (a no-op when up to date)
    python3 benchmarks/peers/setup.py --force    # reinstall even if up to date
    python3 benchmarks/peers/setup.py --check    # exit 1 if a venv is missing or stale

The requirements file has one section per venv (``# [venv NAME]``): ``common`` goes
to ``.venv-peers`` at the repository root, any other NAME to ``.venv-peers-NAME``.
Each venv is made with ``python -m venv`` and ``pip install -r`` of its section;
a stamp file in the venv holds the hash of the section and of the Python version,
so a second run with nothing changed returns at once. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
REQUIREMENTS = REPO / "benchmarks" / "requirements-peers.txt"
STAMP = ".requirements-peers.sha256"
MARK = "# [venv "


def sections(text: str) -> dict[str, list[str]]:
    """Requirement lines per venv name, in file order."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(MARK) and stripped.endswith("]"):
            current = stripped[len(MARK) : -1].strip()
            out[current] = []
        elif current is not None and stripped and not stripped.startswith("#"):
            out[current].append(stripped)
    return out


def venv_path(name: str, root: Path = REPO) -> Path:
    """Where the venv of a section lives."""
    return root / (".venv-peers" if name == "common" else f".venv-peers-{name}")


def stamp_of(lines: list[str], python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return hashlib.sha256("\n".join([version, *lines]).encode()).hexdigest()


def up_to_date(venv: Path, stamp: str) -> bool:
    f = venv / STAMP
    return (venv / "bin" / "python").exists() and f.exists() and f.read_text().strip() == stamp


def install(name: str, lines: list[str], python: str, force: bool) -> bool:
    """Create/update one venv; returns True if something was installed."""
    venv = venv_path(name)
    stamp = stamp_of(lines, python)
    if not force and up_to_date(venv, stamp):
        print(f"{venv.name}: up to date")
        return False
    t0 = time.perf_counter()
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    (venv / STAMP).unlink(missing_ok=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        req = f.name
    try:
        subprocess.run(
            [*pip, "install", "--quiet", "--disable-pip-version-check", "-r", req], check=True
        )
    finally:
        Path(req).unlink(missing_ok=True)
    subprocess.run([*pip, "check"], check=True)
    (venv / STAMP).write_text(stamp + "\n")
    print(f"{venv.name}: installed {len(lines)} requirements in {time.perf_counter() - t0:.1f}s")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--python", default=sys.executable, help="interpreter for the venvs")
    p.add_argument("--force", action="store_true", help="reinstall even if up to date")
    p.add_argument("--check", action="store_true", help="only check; exit 1 if anything is stale")
    p.add_argument("--only", help="comma list of venv names (default: all sections)")
    args = p.parse_args(argv)
    secs = sections(REQUIREMENTS.read_text())
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(secs)
        if unknown:
            p.error(f"unknown venv(s): {', '.join(sorted(unknown))}; have {', '.join(secs)}")
        secs = {k: v for k, v in secs.items() if k in wanted}
    if args.check:
        stale = [
            n
            for n, lines in secs.items()
            if not up_to_date(venv_path(n), stamp_of(lines, args.python))
        ]
        for n in stale:
            print(f"{venv_path(n).name}: missing or stale", file=sys.stderr)
        return 1 if stale else 0
    t0 = time.perf_counter()
    for name, lines in secs.items():
        install(name, lines, args.python, args.force)
    print(f"peer venvs ready in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

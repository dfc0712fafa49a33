"""Runs the stand-in agent named for this task's shard: ``by_shard.py alpha=honest
beta=bad_line ...`` (a shard not named runs ``honest``)."""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
chosen = dict(arg.split("=", 1) for arg in sys.argv[1:])
name = chosen.get(os.environ.get("SWARMSTREAM_SHARD", ""), "honest")
sys.argv = [name]
runpy.run_path(os.path.join(HERE, f"{name}.py"), run_name="__main__")

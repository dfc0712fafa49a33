"""Fails: exits 1 with a message on stderr."""

import sys

sys.stdin.read()
sys.stderr.write("model overloaded\n")
sys.exit(1)

"""Prints something that is not the answer object."""

import sys

sys.stdin.read()
print("Sure! Here is what I think: {the answer is probably 42")

"""``python -m swarmstream.bench _raw-consumer ...``: the reference consumer process."""

import sys

from swarmstream.bench.raw import main

sys.exit(main(sys.argv[1:]))

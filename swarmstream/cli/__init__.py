"""The swarmstream command line: a thin Typer layer over the library API."""

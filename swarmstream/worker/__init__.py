"""Workers: the EphemeralWorker class and ways to run it."""

from swarmstream.worker.execution import ContextProvider, Outcome
from swarmstream.worker.worker import EphemeralWorker, WorkerSummary

__all__ = ["ContextProvider", "EphemeralWorker", "Outcome", "WorkerSummary"]

"""OneFile API v2.1 simulator and a deterministic OneFile + PICSWeb data generator."""

from onefile_simulator.clock import SimClock
from onefile_simulator.data import OneFileData, format_instant, parse_instant
from onefile_simulator.faults import FaultInjector
from onefile_simulator.generator import Dataset, generate_dataset
from onefile_simulator.server import OneFileSimulator, RecordedCall

__all__ = [
    "Dataset",
    "FaultInjector",
    "OneFileData",
    "OneFileSimulator",
    "RecordedCall",
    "SimClock",
    "format_instant",
    "generate_dataset",
    "parse_instant",
]

"""Simulators of the ward's four source systems, and the data set they serve.

``generate`` builds a deterministic year of dossiers; ``start_simulators`` serves it on loopback,
one ``SimServer`` per source, each speaking exactly the wire format of ``sources.md``. Tests and the
agent's ``demo`` command use these; ``python -m connectors.wardsim serve`` runs them by hand.
"""

from connectors.wardsim.catalogue import DEFAULT_WARD_CODE, DEFAULT_WARD_NAME, FIELDS, PROCEDURES, SOURCES
from connectors.wardsim.dataset import (
    CaseTruth,
    Rates,
    RecordRef,
    RecordVersion,
    Scenario,
    Truth,
    WardDataset,
    generate,
)
from connectors.wardsim.faults import BAD_RECORD_KINDS, Faults
from connectors.wardsim.server import (
    DEFAULT_CREDENTIALS,
    Credentials,
    RequestRecord,
    SimClock,
    SimServer,
    SourceHandler,
    start_simulators,
    stop_simulators,
)

__all__ = [
    "BAD_RECORD_KINDS",
    "DEFAULT_CREDENTIALS",
    "DEFAULT_WARD_CODE",
    "DEFAULT_WARD_NAME",
    "FIELDS",
    "PROCEDURES",
    "SOURCES",
    "CaseTruth",
    "Credentials",
    "Faults",
    "Rates",
    "RecordRef",
    "RecordVersion",
    "RequestRecord",
    "Scenario",
    "SimClock",
    "SimServer",
    "SourceHandler",
    "Truth",
    "WardDataset",
    "generate",
    "start_simulators",
    "stop_simulators",
]

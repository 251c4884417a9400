"""What a node-power source gives: one reading of the BMC, or a NodePowerError with a reason.

The reason is a fixed word (the `reason` label of wattprint_node_power_errors_total); the message says where
and what to do, and never holds a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# How the node's energy is made (the `method` label of wattprint_node_power_source_info):
METHOD_COUNTER = "counter"                       # deltas of the BMC's own energy counter
METHOD_POWER = "power_integration"               # its power readings integrated by the exporter (trapezoid)

# The reasons a read fails (the `reason` label of wattprint_node_power_errors_total).
TIMEOUT = "timeout"              # no (whole) answer within --node-power-timeout
CONNECTION = "connection"        # refused, reset, name not resolved
TLS = "tls"                      # the BMC's certificate did not verify (--redfish-ca-file), or the handshake failed
UNAUTHORIZED = "unauthorized"    # HTTP 401 or 403: the user or the password
NOT_FOUND = "not_found"          # HTTP 404: a resource named before is gone (the chassis is found again)
HTTP_ERROR = "http_error"        # any other status than 200
REDIRECT = "redirect"            # a redirect, or a link, to another origin than --redfish-url's: refused
BAD_RESPONSE = "bad_response"    # not JSON, not an object, too large
NO_READING = "no_reading"        # no chassis offers a power or energy reading, or the chosen one is missing (null)
BAD_VALUE = "bad_value"          # a reading that is not a finite number >= 0
UNEXPECTED = "unexpected"        # a bug in the collector (logged with its type)
REASONS = (TIMEOUT, CONNECTION, TLS, UNAUTHORIZED, NOT_FOUND, HTTP_ERROR, REDIRECT, BAD_RESPONSE, NO_READING,
           BAD_VALUE, UNEXPECTED)


class NodePowerError(Exception):
    """A failed read of the BMC: `reason` is one of REASONS, the message is for the log."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason


class NodePowerUnavailable(Exception):
    """A configuration fault found at start (bad URL, unreadable password or CA file): exit status 2."""


@dataclass(frozen=True)
class NodeReading:
    """One reading of the node's BMC. Exactly one of energy_joules and power_watts drives the energy (`method`);
    power_watts is also the gauge whenever the BMC gave one."""

    timestamp: float                 # monotonic seconds: the middle of the request that got it
    method: str                      # METHOD_COUNTER or METHOD_POWER
    energy_joules: float | None      # the BMC's energy counter (J), for METHOD_COUNTER
    power_watts: float | None        # the BMC's power reading (W)
    reading: str                     # the Redfish property read, e.g. EnvironmentMetrics.EnergyJoules
    chassis: str                     # the chassis it belongs to, e.g. /redfish/v1/Chassis/1


class NodePowerSource(Protocol):
    """A BMC: `open` checks the configuration (NodePowerUnavailable), `read` gets one reading (NodePowerError)."""

    name: str        # the `source` label: redfish

    @property
    def bmc(self) -> str:
        """The BMC's address (host[:port]): a saved energy counter is resumed only from the same BMC (--state-file)."""

    def open(self) -> None: ...

    def read(self) -> NodeReading: ...

    def close(self) -> None: ...

"""Observability: traces (OpenTelemetry), metrics (prometheus-client), stats and SLOs.

Everything here is an interceptor on the gate or a query over the store: the kernel does not
import it, and switched off it costs nothing. ``aiosys.observe`` sits beside
``aiosys.governance`` (neither imports the other); the composition root (``aiosys.app``)
wires them together.
"""

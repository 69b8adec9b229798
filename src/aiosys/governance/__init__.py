"""Governance at the gate: identity and tenants, policy (Cedar) and the audit log.

Everything here plugs into the kernel as interceptors on the gate and as checks on the
App's run calls; the kernel does not import this package.
"""

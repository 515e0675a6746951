"""Remediation: declarative runbooks matched against alerts, guarded and audited."""

"""Windows knowledge in one place: remote paths and typed command builders.

Every command line winfleet sends to a Windows host is built here (`powershell`, `sc`, `wmcb`),
with its own quoting (`quoting`). Pure functions only: no I/O; `activities/ssh.py` runs them.
"""

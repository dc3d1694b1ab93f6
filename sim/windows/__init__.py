"""SIMULATED Windows Server hosts for local runs, tests and benchmarks.

One Python process hosts many simulated hosts (`sim.windows.fleet.HostFleet`); each listens for
SSH/SFTP on its own loopback address, runs a strict cmd.exe/PowerShell/sc.exe/WMCB vocabulary
(see sim/README.md) and, when its services run, simulated kubelet / hybrid-overlay / kube-proxy
tasks that talk to a Kubernetes API server over real HTTPS. Nothing here is imported by the
product; nothing here is a real Windows component.
"""

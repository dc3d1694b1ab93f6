"""SIMULATED cloud providers for the local twin.

`aws.AwsTwin` (moto EC2 in server mode) and `azure.AzureTwin` (an ARM + AAD subset over HTTPS).
Each one turns a running VM into a simulated Windows host in a `sim.windows.fleet.HostFleet`
and removes it when the VM goes away. Used by `sim.twin.Twin` and the tests in
`tests/sim_cloud/`. Never imported by the product.
"""

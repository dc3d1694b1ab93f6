"""Where Windows nodes come from: cloud VMs (AWS, Azure) or existing BYOH hosts.

`vm` holds the `create_vm` / `terminate_vm` activities; `aws`, `azure` and `byoh` do the
platform work; `userdata` builds the first-boot script that authorises winfleet's public key.
"""

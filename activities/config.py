"""Worker-side settings, read once from the environment.

Everything an activity needs to reach the outside world: kubeconfig path, namespace, cloud
endpoints, payload location. Secrets are not settings: activities read them from Kubernetes
secrets or from the credential chains of the cloud SDKs, at the moment they need them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from activities.errors import InvalidRequest

DEFAULT_SUPPORTED_BUILDS = ("10.0.17763", "10.0.20348")  # Windows Server 2019, 2022
DEFAULT_BLOCKING_THREADS = 64


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None  # None: in-cluster service account
    namespace: str
    version: str
    payload_dir: Path
    supported_builds: tuple[str, ...]
    mcs_url: str | None  # Machine Config Server URL of the worker ignition; None: derived
    mcs_ca_bundle: str | None  # CA bundle for the MCS; None: the kubeconfig's CA
    service_cidr: str
    ssh_port: int
    ssh_connect_timeout: float
    aws_endpoint_url: str | None
    aws_region: str | None
    azure_arm_endpoint: str
    azure_subscription_id: str | None
    azure_ca_bundle: str | None
    azure_authority_host: str | None
    # Defaults for empty fields of a pool's machine spec (activities/cloud/vm.py).
    aws_image_id: str | None = None
    aws_subnet_id: str | None = None
    aws_security_group_id: str | None = None
    azure_resource_group: str | None = None
    azure_location: str | None = None
    azure_subnet_id: str | None = None
    # OAuth scope for ARM tokens; None: the public cloud's (as the Azure SDK defaults)
    azure_credential_scope: str | None = None
    # Payload versions the worker holds, oldest first. With WINFLEET_PAYLOAD_VERSIONS each one
    # is `payload_dir/<version>/`; without, payload_dir itself is the one version `version`.
    payload_versions: tuple[str, ...] = ()
    payload_per_version: bool = False

    def payload_dir_for(self, version: str = "") -> Path:
        """The directory of a payload version ("" = the default `version`)."""
        wanted = version or self.version
        if wanted not in self.payload_versions:
            raise InvalidRequest(
                f"payload version {wanted!r} is not on this worker; it has "
                f"{', '.join(self.payload_versions) or 'none'} (WINFLEET_PAYLOAD_VERSIONS)"
            )
        return self.payload_dir / wanted if self.payload_per_version else self.payload_dir

    # The cluster's identity in cloud tags; None: the OpenShift infrastructure name, else the
    # API server's host name (activities/cloud/identity.py)
    cluster_id: str | None = None
    # Threads for blocking SDK calls (activities/blocking.py): as many as activities may be
    # waiting on a synchronous client at once
    blocking_threads: int = DEFAULT_BLOCKING_THREADS

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        builds = e.get("WINFLEET_SUPPORTED_BUILDS", ",".join(DEFAULT_SUPPORTED_BUILDS))
        versions = _split(e.get("WINFLEET_PAYLOAD_VERSIONS", ""))
        # The default version: WINFLEET_VERSION, else the newest payload version.
        version = e.get("WINFLEET_VERSION") or (versions[-1] if versions else "0.1.0")
        return Settings(
            kubeconfig=e.get("KUBECONFIG") or None,
            namespace=e.get("WINFLEET_NAMESPACE", "winfleet"),
            version=version,
            payload_dir=Path(e.get("WINFLEET_PAYLOAD_DIR", "payload")),
            supported_builds=_split(builds),
            mcs_url=e.get("WINFLEET_MCS_URL") or None,
            mcs_ca_bundle=e.get("WINFLEET_MCS_CA_BUNDLE") or None,
            service_cidr=e.get("WINFLEET_SERVICE_CIDR", "172.30.0.0/16"),
            ssh_port=int(e.get("WINFLEET_SSH_PORT", "22")),
            ssh_connect_timeout=float(e.get("WINFLEET_SSH_CONNECT_TIMEOUT", "10")),
            aws_endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
            aws_region=e.get("AWS_DEFAULT_REGION") or e.get("AWS_REGION") or None,
            azure_arm_endpoint=e.get("AZURE_ARM_ENDPOINT", "https://management.azure.com"),
            azure_subscription_id=e.get("AZURE_SUBSCRIPTION_ID") or None,
            azure_ca_bundle=e.get("AZURE_CA_BUNDLE") or None,
            azure_authority_host=e.get("AZURE_AUTHORITY_HOST") or None,
            aws_image_id=e.get("WINFLEET_AWS_IMAGE_ID") or None,
            aws_subnet_id=e.get("WINFLEET_AWS_SUBNET_ID") or None,
            aws_security_group_id=e.get("WINFLEET_AWS_SECURITY_GROUP_ID") or None,
            azure_resource_group=e.get("WINFLEET_AZURE_RESOURCE_GROUP") or None,
            azure_location=e.get("WINFLEET_AZURE_LOCATION") or None,
            azure_subnet_id=e.get("WINFLEET_AZURE_SUBNET_ID") or None,
            azure_credential_scope=e.get("AZURE_CREDENTIAL_SCOPE") or None,
            payload_versions=versions or (version,),
            payload_per_version=bool(versions),
            cluster_id=e.get("WINFLEET_CLUSTER_ID") or None,
            blocking_threads=max(
                1, int(e.get("WINFLEET_BLOCKING_THREADS") or DEFAULT_BLOCKING_THREADS)
            ),
        )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@cache
def settings() -> Settings:
    """The process-wide settings (tests build their own with `Settings.from_env(env)`)."""
    return _override[0] if _override else Settings.from_env()


def use_settings(new: Settings) -> None:
    """Replace the process-wide settings (worker start-up and tests); drops cached clients."""
    settings.cache_clear()
    _override.clear()
    _override.append(new)
    for hook in _on_change:
        hook()


def on_settings_change(hook: Callable[[], None]) -> None:
    """Register a cache-clearing hook (e.g. the Kubernetes ApiClient)."""
    _on_change.append(hook)


_override: list[Settings] = []
_on_change: list[Callable[[], None]] = []

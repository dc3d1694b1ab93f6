"""WindowsMachinePool custom resources, read into `PoolSpec`s.

`parse_pool(obj)` maps the custom resource's JSON (camelCase) onto
`activities.pool_contracts.PoolSpec`, filling what is missing with the CRD's defaults (an object
stored before a default was added may lack it), and refuses a pool with `InvalidRequest` listing
every problem with its field path, including what the CRD's schema cannot say: a percentage
above 100 %, `maxUnhealthy` 0 without `maxSurge`, a pool name too long for Windows computer
names, an unknown time zone. Pure (no I/O but the time-zone database); the pool activities of
the fleet workflows call it on what they read from the cluster.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from activities.contracts import (
    AwsMachineSpec,
    AzureMachineSpec,
    ByohHostSpec,
    Platform,
    PoolName,
)
from activities.errors import InvalidRequest
from activities.pool_contracts import (
    DAYS,
    DrainTimeoutAction,
    IntOrPercent,
    MaintenanceWindow,
    PoolSpec,
    ReconcileSettings,
    UpgradeSettings,
    UpgradeStrategy,
)

MAX_POOL_NAME = 9  # node names are `<pool>-<5 chars>`, Windows computer names at most 15
_POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^[0-9A-Za-z]([0-9A-Za-z._+-]*[0-9A-Za-z])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds of a Go/metav1 duration ("90s", "10m", "1h30m", "1.5h"); ValueError otherwise."""
    raw = text.strip()
    if raw == "0":
        return 0.0
    if not raw:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if match is None:
            raise ValueError(f'"{text}" is not a duration like "90s", "10m" or "1h30m"')
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        pos = match.end()
    return total


class _Problems:
    """Collects `path: message` lines, so one refusal names everything that is wrong."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")

    def section(self, obj: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(f"{path}.{key}", "must be an object")
            return {}
        return value

    def string(self, obj: dict[str, Any], key: str, path: str, default: str = "") -> str:
        value = obj.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.add(f"{path}.{key}", f"{value!r} is not a string")
            return default
        return value

    def count(self, obj: dict[str, Any], key: str, path: str, default: int = 0) -> int:
        value = obj.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.add(f"{path}.{key}", f"{value!r} is not a whole number ≥ 0")
            return default
        return value

    def seconds(self, obj: dict[str, Any], key: str, path: str, default: str) -> int:
        text = self.string(obj, key, path, default)
        try:
            value = parse_duration(text)
        except ValueError as exc:
            self.add(f"{path}.{key}", str(exc))
            return int(parse_duration(default))
        if value <= 0:
            self.add(f"{path}.{key}", f'"{text}" must be longer than 0')
        return int(value)

    def choice(self, obj: dict[str, Any], key: str, path: str, allowed: tuple[str, ...]) -> str:
        value = self.string(obj, key, path, allowed[0])
        if value not in allowed:
            self.add(f"{path}.{key}", f'"{value}" is not one of {", ".join(allowed)}')
            return allowed[0]
        return value


def _check_name(name: Any, problems: _Problems) -> str:
    if not isinstance(name, str) or not name:
        problems.add("metadata.name", "missing")
        return ""
    if len(name) > MAX_POOL_NAME or not _POOL_NAME.match(name):
        problems.add(
            "metadata.name",
            f'"{name}" cannot name a pool: node names are <pool>-<5 characters> and Windows '
            f"computer names have at most 15, so a pool name is a lowercase RFC 1123 label of "
            f"at most {MAX_POOL_NAME} characters starting with a letter",
        )
    return name


def _machine(spec: dict[str, Any], platform: str, p: _Problems) -> dict[str, Any]:
    for other in ("aws", "azure", "byoh"):
        if other != platform and spec.get(other) is not None:
            p.add(f"spec.{other}", f"is set, but spec.platform is {platform or 'missing'}")
    out: dict[str, Any] = {}
    if platform == "aws":
        aws = p.section(spec, "aws", "spec")
        groups = aws.get("securityGroupIds") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            p.add("spec.aws.securityGroupIds", "must be a list of security group IDs")
            groups = []
        out["aws"] = AwsMachineSpec(
            image_id=p.string(aws, "imageId", "spec.aws"),
            instance_type=p.string(aws, "instanceType", "spec.aws", "m5a.large") or "m5a.large",
            subnet_id=p.string(aws, "subnetId", "spec.aws"),
            security_group_ids=tuple(groups),
            region=p.string(aws, "region", "spec.aws"),
        )
    elif platform == "azure":
        az = p.section(spec, "azure", "spec")
        d = AzureMachineSpec()
        out["azure"] = AzureMachineSpec(
            resource_group=p.string(az, "resourceGroup", "spec.azure"),
            location=p.string(az, "location", "spec.azure"),
            vm_size=p.string(az, "vmSize", "spec.azure", d.vm_size) or d.vm_size,
            subnet_id=p.string(az, "subnetId", "spec.azure"),
            image_publisher=p.string(az, "imagePublisher", "spec.azure", d.image_publisher),
            image_offer=p.string(az, "imageOffer", "spec.azure", d.image_offer),
            image_sku=p.string(az, "imageSku", "spec.azure", d.image_sku),
            image_version=p.string(az, "imageVersion", "spec.azure", d.image_version),
        )
    elif platform == "byoh":
        hosts = p.section(spec, "byoh", "spec").get("hosts") or []
        parsed: list[ByohHostSpec] = []
        if not isinstance(hosts, list):
            p.add("spec.byoh.hosts", "must be a list")
            hosts = []
        for i, host in enumerate(hosts):
            path = f"spec.byoh.hosts[{i}]"
            if not isinstance(host, dict) or not host.get("address"):
                p.add(f"{path}.address", "missing")
                continue
            parsed.append(
                ByohHostSpec(
                    address=p.string(host, "address", path),
                    username=p.string(host, "username", path, "Administrator") or "Administrator",
                )
            )
        addresses = [h.address for h in parsed]
        for address in sorted({a for a in addresses if addresses.count(a) > 1}):
            p.add("spec.byoh.hosts", f"lists {address} more than once")
        out["byoh_hosts"] = tuple(parsed)
    return out


def _window(upgrade: dict[str, Any], p: _Problems) -> MaintenanceWindow | None:
    raw = upgrade.get("maintenanceWindow")
    if raw is None:
        return None
    path = "spec.upgrade.maintenanceWindow"
    if not isinstance(raw, dict):
        p.add(path, "must be an object")
        return None
    days = raw.get("days")
    if not isinstance(days, list) or not days:
        p.add(f"{path}.days", f"must list at least one of {', '.join(DAYS)}")
        days = []
    for day in days:
        if day not in DAYS:
            p.add(f"{path}.days", f"{day!r} is not one of {', '.join(DAYS)}")
    start = p.string(raw, "start", path)
    if not _CLOCK.match(start):
        p.add(f"{path}.start", f'"{start}" is not a time of day like "22:00"')
    duration = p.seconds(raw, "duration", path, "1h") if "duration" in raw else 0
    if "duration" not in raw:
        p.add(f"{path}.duration", 'missing (e.g. "4h")')
    elif duration > 7 * 86400:
        p.add(f"{path}.duration", "is longer than a week: leave the window out instead")
    tz = p.string(raw, "timeZone", path, "UTC") or "UTC"
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        p.add(f"{path}.timeZone", f'"{tz}" is not an IANA time zone like "Europe/Berlin"')
    ordered = tuple(d for d in DAYS if d in days)
    return MaintenanceWindow(days=ordered, start=start, duration_s=duration, time_zone=tz)


def _upgrade(spec: dict[str, Any], platform: str, p: _Problems) -> UpgradeSettings:
    up = p.section(spec, "upgrade", "spec")
    path = "spec.upgrade"
    strategy = p.choice(up, "strategy", path, tuple(UpgradeStrategy))
    if platform == "byoh":
        strategy = UpgradeStrategy.IN_PLACE  # a BYOH host cannot be replaced by winfleet
    return UpgradeSettings(
        strategy=UpgradeStrategy(strategy),
        max_surge=p.count(up, "maxSurge", path),
        canary=bool(up.get("canary", False)),
        node_startup_timeout_s=p.seconds(up, "nodeStartupTimeout", path, "10m"),
        drain_timeout_s=p.seconds(up, "drainTimeout", path, "15m"),
        on_drain_timeout=DrainTimeoutAction(
            p.choice(up, "onDrainTimeout", path, tuple(DrainTimeoutAction))
        ),
        maintenance_window=_window(up, p),
    )


def _max_unhealthy(spec: dict[str, Any], max_surge: int, p: _Problems) -> IntOrPercent:
    raw = spec.get("maxUnhealthy", 1)
    try:
        value = IntOrPercent.parse(1 if raw is None else raw)
    except ValueError as exc:
        p.add("spec.maxUnhealthy", str(exc))
        return IntOrPercent(1)
    if value.value == 0 and max_surge < 1:
        p.add(
            "spec.maxUnhealthy",
            f"{value} lets no node be taken down while spec.upgrade.maxSurge is 0: "
            "set maxUnhealthy ≥ 1 or maxSurge ≥ 1",
        )
    return value


def parse_pool(obj: dict[str, Any]) -> PoolSpec:
    """The pool a WindowsMachinePool object declares; InvalidRequest naming every problem."""
    p = _Problems()
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    name = _check_name(meta.get("name"), p)
    spec = p.section(obj, "spec", "")
    if not spec:
        p.add("spec", "missing")
    platform = spec.get("platform", "")
    if platform not in tuple(Platform):
        p.add("spec.platform", f"{platform!r} is not one of aws, azure, byoh")
        platform = ""
    machine = _machine(spec, platform, p)
    version = p.string(spec, "version", "spec")
    if version and (len(version) > 63 or not _VERSION.match(version)):
        p.add("spec.version", f'"{version}" is not a payload version like "1.1.0"')
    secret = p.string(spec, "privateKeySecret", "spec", "cloud-private-key")
    if len(secret) > 253 or not _SUBDOMAIN.match(secret):
        p.add("spec.privateKeySecret", f'"{secret}" is not a Secret name')
    upgrade = _upgrade(spec, platform, p)
    max_unhealthy = _max_unhealthy(spec, upgrade.max_surge, p)
    rec = p.section(spec, "reconcile", "spec")
    reconcile = ReconcileSettings(
        interval_s=p.seconds(rec, "interval", "spec.reconcile", "5m"),
        unhealthy_timeout_s=p.seconds(rec, "unhealthyTimeout", "spec.reconcile", "10m"),
    )
    replicas = p.count(spec, "replicas", "spec")
    namespace = meta.get("namespace") or ""
    if p.lines:
        where = f"{namespace}/{name}" if namespace else name or "(no name)"
        raise InvalidRequest(f"WindowsMachinePool {where} is invalid: " + "; ".join(p.lines))
    return PoolSpec(
        name=PoolName(name),
        namespace=str(namespace),
        platform=Platform(platform),
        replicas=replicas,
        version=version,
        private_key_secret=secret,
        max_unhealthy=max_unhealthy,
        upgrade=upgrade,
        reconcile=reconcile,
        generation=int(meta.get("generation") or 0),
        uid=str(meta.get("uid") or ""),
        **machine,
    )

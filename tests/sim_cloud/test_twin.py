"""`sim.twin.Twin` as the developer running `python -m sim up` sees it: one env file to source."""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import boto3
import pytest

from sim.twin import ENV_KEYS, Twin
from tests.sim_cloud.conftest import ssh, wait_until


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[Twin]:
    started = Twin(
        tmp_path / "state",
        boot_seconds=1.0,
        byoh_hosts=2,
        aws_cidr="127.11.0.0/17",
        azure_cidr="127.21.0.0/17",
        byoh_cidr="127.21.200.0/24",
    )
    async with started:
        yield started


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = shlex.split(value)[0] if value else ""
    return out


async def kubectl(kubeconfig: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        kubeconfig,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_started_twin_writes_an_env_whose_kubeconfig_kubectl_can_use(twin: Twin) -> None:
    env = read_env(twin.env_path)
    assert list(env) == list(ENV_KEYS)
    assert all(env.values()), [k for k, v in env.items() if not v]
    assert env["WINFLEET_NAMESPACE"] == "winfleet"

    listed = json.loads(
        await kubectl(
            env["KUBECONFIG"],
            "get",
            "configmap",
            "windows-instances",
            "-n",
            "winfleet",
            "-o",
            "json",
        )
    )
    assert listed["data"] == {
        ip: "username=Administrator" for ip in env["WINFLEET_BYOH_HOSTS"].split(",")
    }
    secrets = await kubectl(env["KUBECONFIG"], "get", "secrets", "-n", "winfleet", "-o", "name")
    assert "secret/cloud-private-key" in secrets.split()
    assert "PRIVATE KEY" not in twin.env_path.read_text()

    ec2 = boto3.client(
        "ec2",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    image = ec2.describe_images(ImageIds=[env["WINFLEET_AWS_IMAGE_ID"]])["Images"][0]
    assert image["Platform"] == "windows"


async def test_the_operator_key_in_the_cluster_secret_logs_into_every_byoh_host(
    twin: Twin,
) -> None:
    env = read_env(twin.env_path)
    encoded = await kubectl(
        env["KUBECONFIG"],
        "get",
        "secret",
        "cloud-private-key",
        "-n",
        "winfleet",
        "-o",
        r"jsonpath={.data.private-key\.pem}",
    )
    pem = base64.b64decode(encoded)
    assert pem.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    key = asyncssh.import_private_key(pem)
    assert key.algorithm == b"ssh-rsa"

    hostnames = [
        await ssh(ip, key, "Administrator") for ip in env["WINFLEET_BYOH_HOSTS"].split(",")
    ]
    assert hostnames == ["byoh-1", "byoh-2"]


async def test_sim_up_runs_until_sigterm_then_shuts_down_and_withdraws_the_env(
    tmp_path: Path,
) -> None:
    state = tmp_path / "up"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sim",
        "up",
        "--state-dir",
        str(state),
        "--byoh",
        "1",
        "--aws-cidr",
        "127.11.128.0/17",
        "--azure-cidr",
        "127.21.128.0/17",
        "--byoh-cidr",
        "127.21.201.0/24",
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def ready() -> bool:
            assert proc.returncode is None, "python -m sim up exited early"
            return (state / "env").exists()

        await wait_until(ready, "python -m sim up to write its env file", deadline=90)
        env = read_env(state / "env")
        assert env["WINFLEET_BYOH_HOSTS"] == "127.21.201.11"
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert time.monotonic() - started < 10
    assert f"source {state / 'env'}" in out.decode()
    assert not (state / "env").exists()

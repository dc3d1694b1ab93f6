"""Strict decoding: every way JSON input can be wrong names the field; good input round-trips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    AwsMachineSpec,
    ByohHostSpec,
    HostAddress,
    HostRef,
    InstanceId,
    OnboardNodeInput,
    Platform,
)
from workflows.decoding import data_converter

CONVERTER = data_converter().payload_converter


def decode(raw: Any, hint: type) -> Any:
    return CONVERTER.from_payloads(CONVERTER.to_payloads([raw]), [hint])[0]


def refusal(raw: Any, hint: type = OnboardNodeInput) -> str:
    with pytest.raises(ApplicationError) as info:
        decode(raw, hint)
    assert info.value.type == "InvalidRequest" and info.value.non_retryable
    return info.value.message


BASE = {"pool": "p", "node_name": "n", "platform": "aws"}


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ({**BASE, "platform": "gcp"}, "platform: 'gcp' is not one of aws, azure, byoh"),
        ({**BASE, "aws": "m5a.large"}, "aws: expected an object, got a string"),
        ({**BASE, "aws": {"instance_type": 5}}, "aws.instance_type: expected a string"),
        (
            {**BASE, "aws": {"security_group_ids": "sg-1"}},
            "aws.security_group_ids: expected a list",
        ),
        (
            {**BASE, "aws": {"security_group_ids": [1]}},
            "aws.security_group_ids[0]: expected a string",
        ),
        ({**BASE, "privateKeySecret": "k"}, "did you mean 'private_key_secret'?"),
        ({**BASE, "aws": {"instanceType": "x"}}, "aws.instanceType: unknown field"),
        ({"pool": "p", "platform": "aws"}, "node_name: required field is missing"),
        ({**BASE, "node_name": None}, "node_name: must not be null"),
        ({**BASE, "version": 1.1}, "version: expected a string, got the number 1.1"),
        ([BASE], "expected an object, got a list"),
    ],
)
def test_bad_input_is_refused_naming_the_field(raw: Any, said: str) -> None:
    assert said in refusal(raw)


def test_good_input_decodes_to_the_frozen_types() -> None:
    inp = decode(
        {**BASE, "platform": "byoh", "byoh": {"address": "10.0.0.5"}, "version": "1.1.0"},
        OnboardNodeInput,
    )
    assert inp == OnboardNodeInput(
        pool="p",
        node_name="n",
        platform=Platform.BYOH,
        byoh=ByohHostSpec(address="10.0.0.5"),
        version="1.1.0",
    )
    spec = decode({"security_group_ids": ["sg-1", "sg-2"]}, AwsMachineSpec)
    assert spec.security_group_ids == ("sg-1", "sg-2")


def test_a_dataclass_round_trips_through_the_converter() -> None:
    host = HostRef(
        platform=Platform.AWS,
        address=HostAddress("10.1.2.3"),
        username="Administrator",
        instance_id=InstanceId("i-0123"),
    )
    assert decode(host, HostRef) == host


@dataclass(frozen=True)
class Counted:
    n: int
    ratio: float = 0.0


def test_a_boolean_is_not_taken_for_a_number() -> None:
    assert "n: expected a whole number, got a boolean" in refusal({"n": True}, Counted)
    assert decode({"n": 2, "ratio": 1}, Counted) == Counted(n=2, ratio=1.0)

"""Secret and ConfigMap rules of the API server twin (stringData, immutability, binaryData)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

NS = "winfleet"


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _raw_secret(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    return json.loads(core.read_namespaced_secret(name, NS, _preload_content=False).data)


def _message(exc: pytest.ExceptionInfo[ApiException]) -> str:
    return str(json.loads(exc.value.body)["message"])


def test_string_data_is_stored_as_base64_data_and_never_returned(core: client.CoreV1Api):
    created = core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": "creds"},
            "data": {"user": _b64("admin"), "pass": _b64("old")},
            "stringData": {"pass": "s3cret"},
        },
    )
    assert created.string_data is None
    assert created.data == {"user": _b64("admin"), "pass": _b64("s3cret")}
    core.patch_namespaced_secret("creds", NS, {"stringData": {"token": "t0k"}})
    raw = _raw_secret(core, "creds")
    assert "stringData" not in raw and raw["type"] == "Opaque"
    assert base64.b64decode(raw["data"]["token"]) == b"t0k"


def test_secret_data_that_is_not_base64_is_a_bad_request(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_secret(NS, {"metadata": {"name": "bad"}, "data": {"k": "no*pe"}})
    assert exc.value.status == 400
    assert "illegal base64 data at input byte 2" in _message(exc)


def test_an_immutable_secret_refuses_data_changes_but_takes_label_changes(
    core: client.CoreV1Api,
):
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "frozen"}, "data": {"k": _b64("v")}, "immutable": True}
    )
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_secret("frozen", NS, {"data": {"k": _b64("changed")}})
    assert exc.value.status == 422
    assert _message(exc) == (
        'Secret "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_secret("frozen", NS, {"immutable": False})
    assert exc.value.status == 422 and "immutable: Forbidden" in _message(exc)
    labelled = core.patch_namespaced_secret("frozen", NS, {"metadata": {"labels": {"a": "b"}}})
    assert labelled.metadata.labels == {"a": "b"} and labelled.data == {"k": _b64("v")}


def test_a_secret_type_cannot_change(core: client.CoreV1Api):
    core.create_namespaced_secret(NS, {"metadata": {"name": "typed"}, "data": {"k": _b64("v")}})
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_secret(
            "typed", NS, {"type": "kubernetes.io/basic-auth", "stringData": {"username": "u"}}
        )
    assert exc.value.status == 422
    assert 'type: Invalid value: "kubernetes.io/basic-auth": field is immutable' in _message(exc)


def test_built_in_secret_types_require_their_keys(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_secret(
            NS,
            {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}},
        )
    assert exc.value.status == 422 and "data[tls.key]: Required value" in _message(exc)


def test_binary_data_round_trips_and_shares_no_key_with_data(core: client.CoreV1Api):
    blob = bytes(range(256))
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "bin"}, "data": {"a": "text"}, "binaryData": {"b": _b64(blob)}}
    )
    read = core.read_namespaced_config_map("bin", NS)
    assert base64.b64decode(read.binary_data["b"]) == blob and read.data == {"a": "text"}
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": "dup"}, "data": {"k": "x"}, "binaryData": {"k": _b64("y")}}
        )
    assert exc.value.status == 422
    assert 'binaryData[k]: Invalid value: "k": duplicate of key present in data' in _message(exc)


def test_config_map_keys_are_validated_like_the_real_server(core: client.CoreV1Api):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": "keys"}, "data": {"bad key": "x"}}
        )
    assert exc.value.status == 422
    assert "regex used for validation is '[-._a-zA-Z0-9]+'" in _message(exc)


def test_an_immutable_config_map_refuses_data_and_binary_data_changes(core: client.CoreV1Api):
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": "pinned"}, "data": {"a": "1"}, "immutable": True}
    )
    for change in ({"data": {"a": "2"}}, {"binaryData": {"b": _b64("x")}}):
        with pytest.raises(ApiException) as exc:
            core.patch_namespaced_config_map("pinned", NS, change)
        assert exc.value.status == 422
        assert "field is immutable when `immutable` is set" in _message(exc)
    annotated = core.patch_namespaced_config_map(
        "pinned", NS, {"metadata": {"annotations": {"note": "ok"}}}
    )
    assert annotated.metadata.annotations == {"note": "ok"} and annotated.data == {"a": "1"}

"""Strict decoding of workflow and activity payloads: bad input fails the run, naming the field.

Temporal's default JSON converter drops unknown fields silently and raises a plain TypeError
for a wrong type, which the SDK treats as a workflow-task failure: the task is retried forever
and the run never ends. `StrictJSONPayloadConverter` decodes dataclasses, enums, NewTypes,
optionals, tuples, lists and dicts itself and raises a non-retryable `ApplicationError`
(type `InvalidRequest`) that names the field (`aws.instance_type`), so a start from the
`temporal` CLI or the Web UI with a misspelt or mistyped field closes the workflow as FAILED at
once. Installed on the worker's client by `worker.app.build_worker` (`data_converter()`).

Pure and deterministic; it runs during replay too, so tightening it changes what old histories
decode to (treat a change here like a workflow change).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import types
import typing
from collections.abc import Sequence
from typing import Any, Union

import temporalio.api.common.v1
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    value_to_type,
)
from temporalio.exceptions import ApplicationError

_NONE = type(None)


class _Bad(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value}"
    return names.get(type(value), type(value).__name__)


def decode(hint: Any, value: Any, path: str = "") -> Any:
    """`value` (parsed JSON) as type `hint`; raises `_Bad` naming the path of the first fault."""
    if hint is Any or hint is object:
        return value
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return decode(supertype, value, path)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not _NONE]
        if value is None:
            if _NONE in args:
                return None
            raise _Bad(path, "must not be null")
        if len(options) == 1:
            return decode(options[0], value, path)
        return value_to_type(hint, value)
    if value is None and hint is not _NONE:
        raise _Bad(path, "must not be null")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _decode_dataclass(hint, value, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [m.value for m in hint]
        if value not in allowed:
            shown = ", ".join(str(a) for a in allowed)
            raise _Bad(path, f"{_show(value)} is not one of {shown}")
        return hint(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Bad(path, f"expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(path, f"expected a whole number, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(path, f"expected a number, got {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Bad(path, f"expected a string, got {_kind(value)}")
        return value
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, list):
            raise _Bad(path, f"expected a list, got {_kind(value)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Bad(path, f"expected {len(args)} items, got {len(value)}")
            return tuple(
                decode(a, v, _join(path, i))
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [decode(item, v, _join(path, i)) for i, v in enumerate(value)]
        return items if origin is list or hint is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Bad(path, f"expected an object, got {_kind(value)}")
        key_hint, value_hint = args if args else (Any, Any)
        return {
            decode(key_hint, k, path): decode(value_hint, v, _join(path, str(k)))
            for k, v in value.items()
        }
    try:
        return value_to_type(hint, value)
    except (TypeError, ValueError, KeyError) as exc:
        raise _Bad(path, str(exc)[:200]) from None


def _decode_dataclass(hint: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise _Bad(path, f"expected an object, got {_kind(value)}")
    fields = {f.name: f for f in dataclasses.fields(hint) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(_snake(name), list(fields), n=1)
        hint_text = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(fields)
        raise _Bad(_join(path, name), f"unknown field{hint_text}; the fields are: {known}")
    hints = _type_hints(hint)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _Bad(_join(path, name), "required field is missing")
            continue
        values[name] = decode(hints[name], value[name], _join(path, name))
    return hint(**values)


@functools.lru_cache(maxsize=1024)
def _type_hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, resolved once per class (resolving compiles every string
    annotation: most of a decode's time otherwise)."""
    return typing.get_type_hints(cls)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class StrictJSONPayloadConverter(JSONPlainPayloadConverter):
    """`json/plain` with strict, field-naming decoding (see the module docstring)."""

    def from_payload(
        self,
        payload: temporalio.api.common.v1.Payload,
        type_hint: type | None = None,
    ) -> Any:
        obj = super().from_payload(payload)
        if type_hint is None:
            return obj
        try:
            return decode(type_hint, obj)
        except _Bad as exc:
            raise ApplicationError(
                f"the input does not decode as {getattr(type_hint, '__name__', type_hint)}: {exc}",
                type="InvalidRequest",
                non_retryable=True,
            ) from None


class StrictPayloadConverter(CompositePayloadConverter):
    """Temporal's default converters with the JSON one made strict."""

    def __init__(self) -> None:
        super().__init__(
            *(
                StrictJSONPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


def data_converter() -> DataConverter:
    """The data converter winfleet's worker decodes with."""
    return dataclasses.replace(
        DataConverter.default, payload_converter_class=StrictPayloadConverter
    )

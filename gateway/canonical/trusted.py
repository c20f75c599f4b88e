"""FHIR JSON the gateway built itself, as fhir.resources models, without validating it a second time.

The HL7 v2 and pad mappings build the ServiceRequest as plain JSON from fields they have already
checked, and every builder writes only values that fit their FHIR types (tests/trust/test_valid_by_
construction.py proves it over tens of thousands of generated messages, against fhir.resources R4B).
Validating that JSON again on every message cost more than mapping it; `model(cls, data)` instead
builds the same model objects the validation would (nested models, contained resources by their
`resourceType`, dates, times and decimals as fhir.resources parses them) and checks nothing.
Whether the intake validates mapped JSON anyway is a setting: `intake.validate_mapped`.

Must not: be given FHIR from outside (FHIR HTTP, $process-message, MESH FHIR). That is untrusted
input, and fhir.resources validates it every time.
"""

from __future__ import annotations

import datetime
import decimal
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import TypeAdapter, ValidationError

from gateway.errors import InvalidReferral, Issue

M = TypeVar("M", bound=FHIRAbstractModel)
Build = Callable[[Any], Any]

#: Primitive types whose fhir.resources value is not the JSON value itself (a date, not its string).
_PARSED = (datetime.datetime, datetime.date, datetime.time, decimal.Decimal)


def model(cls: type[M], data: Mapping[str, Any]) -> M:
    """`cls` built from FHIR JSON the gateway made. Should a builder ever write an element `cls` does
    not have, or a date it cannot read, that is `InvalidReferral`, as the validation would have said."""
    try:
        return _model(cls, data)
    except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidReferral(
            f"the referral does not make a valid FHIR {cls.get_resource_type()}",
            Issue(str(exc).splitlines()[0][:300], cls.get_resource_type(), "value"),
        ) from exc


def _model(cls: type[M], data: Mapping[str, Any]) -> M:
    shape = _shape(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "resourceType":
            continue
        found = shape.fields.get(key)
        if found is None:
            raise ValueError(f"{cls.__name__} has no element {key!r}")
        name, build = found
        values[name] = build(value)
    return _instance(cls, shape, values)


def validated(cls: type[M], data: Mapping[str, Any]) -> M:
    """`cls` validated by fhir.resources (the `intake.validate_mapped` check); raises `InvalidReferral`
    naming each failing element by its FHIRPath (an HL7 ACK names the HL7 field it came from)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        kind = cls.get_resource_type()
        issues = [Issue(str(e.get("msg")), _path(kind, e.get("loc", ())), "value") for e in exc.errors()]
        raise InvalidReferral(f"the referral does not make a valid FHIR {kind}", *issues) from exc


def _path(kind: str, loc: tuple[int | str, ...]) -> str:
    return ".".join([kind, *(str(p) for p in loc if not isinstance(p, int))])


def resource(data: Mapping[str, Any]) -> FHIRAbstractModel:
    """A resource of whichever type its `resourceType` names (a contained resource, a Bundle entry)."""
    return _model(get_fhir_model_class(str(data["resourceType"])), data)


@dataclass(frozen=True)
class _Shape:
    fields: dict[str, tuple[str, Build]]  # each JSON name (the alias: `class`, `_birthDate`) → field, builder
    defaults: dict[str, Any]  # what an element left out holds (None, for every FHIR element)


@cache
def _shape(cls: type[FHIRAbstractModel]) -> _Shape:
    fields = {(info.alias or name): (name, _builder(info.annotation)) for name, info in cls.model_fields.items()}
    defaults = {name: info.default for name, info in cls.model_fields.items() if not info.is_required()}
    factories = any(info.default_factory for info in cls.model_fields.values())
    if cls.__pydantic_post_init__ or cls.__private_attributes__ or factories:
        raise TypeError(f"{cls.__name__} needs more than its values to be built")  # no FHIR model does
    return _Shape(fields, defaults)


def _instance(cls: type[M], shape: _Shape, values: dict[str, Any]) -> M:
    """What `cls.model_construct(**values)` makes, without its walk over every field and default of
    `cls` for each object (that walk, not the values, was most of its cost)."""
    made = cls.__new__(cls)
    object.__setattr__(made, "__dict__", {**shape.defaults, **values})
    object.__setattr__(made, "__pydantic_fields_set__", set(values))
    object.__setattr__(made, "__pydantic_extra__", None)
    object.__setattr__(made, "__pydantic_private__", None)
    return made


def _builder(annotation: Any) -> Build:
    inner = _without_none(annotation)
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        build = _builder(item)
        return lambda values: [build(v) for v in values]
    klass = getattr(inner, "get_model_klass", None)
    if klass is not None:
        return _nested(inner)
    base = typing.get_args(inner)[0] if typing.get_origin(inner) is typing.Annotated else inner
    if isinstance(base, type) and issubclass(base, _PARSED):
        return TypeAdapter(inner).validate_python  # the primitive alone, as fhir.resources parses it
    return _same


def _nested(kind: Any) -> Build:
    @cache
    def cls() -> type[FHIRAbstractModel]:  # resolved on first use: the model classes refer to each other
        found: type[FHIRAbstractModel] = kind.get_model_klass()
        return found

    def build(value: Any) -> Any:
        if "resourceType" in value and value["resourceType"] != cls().get_resource_type():
            return resource(value)  # a contained resource or an entry's: the type its resourceType names
        return _model(cls(), value)

    return build


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else annotation
    return annotation


def _same(value: Any) -> Any:
    return value

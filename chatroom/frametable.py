"""How a frame's declaration becomes its wire table: reading, checks and encoding.

:mod:`chatroom.protocol` declares each frame once, as a frozen dataclass decorated with
:func:`frame`; this module derives from that declaration the reader (every field
check included), ``to_wire`` and the flat encoder. A field's JSON kind comes from its
annotation: ``str``, ``int`` (``true`` is not one), ``bool``, ``tuple[str, ...]`` (an
array of strings), a tuple of records or of events (an array of objects). A field with
no default must be on the wire; one with a default may be left out, meaning the
default, and is left out when it holds it. :func:`wire` states the exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from types import UnionType
from typing import Any, ClassVar, Self, TypeVar, cast, dataclass_transform, get_args, get_type_hints

from chatroom.framing import ErrorCode, ProtocolError, encode_object

__all__ = ["Frame", "Record", "bad", "frame", "quote", "wire"]

_UNSET: Any = object()
_REQUIRED: Any = object()
_SPEC = "chatroom.protocol"


def wire(*, default: Any = MISSING, default_factory: Any = MISSING, **rules: Any) -> Any:
    """A field whose wire rules are not the plain ones.

    Args:
        default, default_factory: as for :func:`dataclasses.field`.
        rules: ``key``: the name on the wire, when it is not the attribute's (``from``);
            ``always``: sent even when it holds its default; ``required``: must be on the
            wire, although Python callers may leave it out; ``absent``: the value read
            when the field is not on the wire, for a field Python callers must give;
            ``only_with``: sent exactly when this other field is true, whatever its own
            value; ``max_chars``, ``at_least``: limits checked on read (``bad_request``);
            ``on_wire=False``: an attribute that is never sent nor read; ``splice``: a
            dict whose items are sent as the object's own, after the fields, and never
            read back (so it takes no part in equality either); ``null_as``: a JSON
            ``null`` on the wire reads as this value (otherwise null is a bad request).
    """
    return field(
        default=default,
        default_factory=default_factory,
        compare=not rules.get("splice", False),
        metadata={_SPEC: _Field(**rules)},
    )


def bad(detail: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, detail)


_JSON_KIND = {str: "a string", int: "an integer", bool: "true or false", list: "an array"}
# How the JSON encoder (ensure_ascii=False) writes each scalar: the same C functions.
quote: Callable[[str], str] = json.encoder.encode_basestring
_DUMP: dict[type, Callable[[Any], str]] = {str: quote, int: int.__repr__}
_DUMP[bool] = lambda value: "true" if value else "false"


@dataclass(frozen=True, slots=True)
class _Field:
    """One row of a frame's table: the rules given to :func:`wire`, then what the
    declaration derives from them and the annotation for the reader and the writers."""

    key: str = ""
    always: bool = False
    required: bool = False
    absent: Any = _UNSET  # _REQUIRED once derived, when the field may not be absent
    only_with: str | None = None
    max_chars: int | None = None
    at_least: int | None = None
    on_wire: bool = True
    splice: bool = False
    null_as: Any = _UNSET

    name: str = ""
    kind: type = object  # the JSON value's Python type, checked on read
    default: Any = _UNSET
    sometimes: bool = False  # False when the field is always sent: omitted() is skipped
    check: Callable[[Any], Any] | None = None  # limits; an array's items into a tuple
    to_json: Callable[[Any], Any] | None = None  # tuple to list, records to objects
    prefix: str = ""  # ',"key":' for the flat encoder
    dump: Callable[[Any], str] | None = None  # None for arrays: no flat encoder then

    def omitted(self, frame: object, value: Any) -> bool:
        if self.only_with is not None:
            return not getattr(frame, self.only_with)
        return bool(value == self.default)


def _field_of(slot: Any, hint: Any, rules: _Field) -> _Field:
    if rules.splice:
        return replace(rules, name=slot.name)
    key = rules.key or slot.name
    # X | None: None is a default, never a value on the wire.
    kind = get_args(hint)[0] if isinstance(hint, UnionType) else hint
    check: Callable[[Any], Any] | None = None
    to_json: Callable[[Any], Any] | None = None
    if kind in _DUMP:
        check = _limits(key, rules)
    else:  # tuple[X, ...]: a JSON array
        item = get_args(kind)[0]
        kind = list
        if item is str:
            check, to_json = _strings(key), list
        else:
            check = _objects(key, item)
            to_json = lambda values: [value.to_wire() for value in values]  # noqa: E731
    has_default = slot.default is not MISSING or slot.default_factory is not MISSING
    absent = rules.absent if rules.absent is not _UNSET else slot.default
    dump = _DUMP.get(kind)
    null_as = rules.null_as
    if isinstance(hint, UnionType) and rules.always:
        # Always sent, so None goes on the wire as JSON's null, and is read back.
        dump = _null_or(dump) if dump is not None else None
        null_as = None if null_as is _UNSET else null_as
    return replace(
        rules,
        key=key,
        absent=_REQUIRED if rules.required or absent is MISSING else absent,
        name=slot.name,
        kind=kind,
        default=slot.default,
        sometimes=rules.only_with is not None or (has_default and not rules.always),
        check=check,
        to_json=to_json,
        prefix=f",{quote(key)}:",
        dump=dump,
        null_as=null_as,
    )


def _null_or(dump: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda value: "null" if value is None else dump(value)


def _limits(key: str, rules: _Field) -> Callable[[Any], Any] | None:
    most, least = rules.max_chars, rules.at_least
    if most is None and least is None:
        return None

    def check(value: Any) -> Any:
        if most is not None and len(value) > most:
            raise bad(f"a {key} has at most {most} characters")
        if least is not None and value < least:
            raise bad(f"{key!r} must be at least {least}")
        return value

    return check


def _strings(key: str) -> Callable[[list[Any]], tuple[str, ...]]:
    def check(values: list[Any]) -> tuple[str, ...]:
        if not all(isinstance(value, str) for value in values):
            raise bad(f"field {key!r} must hold strings")
        return tuple(values)

    return check


def _objects(key: str, item: Any) -> Callable[[list[Any]], tuple[Any, ...]]:
    """An array of records, or of events when ``item`` is a union of them: an event of
    a type this side does not know is skipped, so servers may add event types."""
    members = get_args(item) if isinstance(item, UnionType) else ()
    by_type = {member.TYPE: member._TABLE.read for member in members}

    def check(values: list[Any]) -> tuple[Any, ...]:
        items: list[Any] = []
        for value in values:
            if not isinstance(value, dict):
                raise bad(f"field {key!r} must hold objects")
            if not by_type:
                items.append(item._TABLE.read(value))
                continue
            kind = value.get("type")
            if not isinstance(kind, str):
                # A list or object here is unhashable: checked first, it is a bad request
                # rather than a TypeError out of the parser.
                raise bad(f"an event in {key!r} has no string type")
            read = by_type.get(kind)
            if read is not None:
                items.append(read(value))
        return tuple(items)

    return check


class _Table:
    """A frame's fields in wire order, and the reader and writers they make."""

    __slots__ = ("encode", "flat_opening", "frame_class", "opening", "read_order", "written")

    def __init__(self, frame_class: type, wire_type: str | None, first: tuple[str, ...]) -> None:
        hints = get_type_hints(frame_class)
        rows: list[_Field] = []
        spliced: list[_Field] = []
        for slot in fields(frame_class):
            rules = slot.metadata.get(_SPEC, _Field())
            if rules.on_wire:
                row = _field_of(slot, hints[slot.name], rules)
                (spliced if rules.splice else rows).append(row)
        # The constructor is called with the fields read, in order, so those that are not
        # read must come last.
        if [row.name for row in rows] != [slot.name for slot in fields(frame_class)][: len(rows)]:
            raise TypeError(f"{frame_class.__name__}: fields off the wire must come last")
        self.frame_class = frame_class
        self.read_order = tuple(rows)
        by_name = {row.name: row for row in rows}
        rest = [row for row in rows if row.name not in first]
        self.written = tuple([by_name[name] for name in first] + rest + spliced)
        self.opening: dict[str, Any] = {} if wire_type is None else {"type": wire_type}
        self.flat_opening = "{" + f'"type":{quote(wire_type)}' if wire_type else "{"
        flat = wire_type is not None and all(row.dump is not None for row in self.written)
        self.encode: Callable[[Any], bytes] = (
            self.encode_flat if flat else lambda frame: encode_object(self.to_wire(frame))
        )

    def read(self, obj: dict[str, Any]) -> Any:
        values = []
        for row in self.read_order:
            value = obj.get(row.key, _REQUIRED)
            if value is _REQUIRED:
                if row.absent is _REQUIRED:
                    raise bad(f"missing field {row.key!r}")
                value = row.absent
            elif value is None and row.null_as is not _UNSET:
                value = row.null_as
            else:
                kind = row.kind
                # bool is an int in Python but not a number on the wire.
                if type(value) is not kind and (not isinstance(value, kind) or type(value) is bool):
                    raise bad(f"field {row.key!r} must be {_JSON_KIND[kind]}")
                if row.check is not None:
                    value = row.check(value)
            values.append(value)
        return self.frame_class(*values)

    def to_wire(self, frame: object) -> dict[str, Any]:
        obj = self.opening.copy()
        for row in self.written:
            value = getattr(frame, row.name)
            if row.sometimes and row.omitted(frame, value):
                continue
            if row.to_json is not None:
                value = row.to_json(value)
            if row.key:
                obj[row.key] = value
            else:
                obj.update(value)
        return obj

    def encode_flat(self, frame: object) -> bytes:
        """``encode_object(to_wire(frame))``, byte for byte, for frames of scalars only,
        without the dict: the JSON encoder's own quoting, written straight into the line."""
        parts = [self.flat_opening]
        for row in self.written:
            value = getattr(frame, row.name)
            if row.sometimes and row.omitted(frame, value):
                continue
            parts.append(row.prefix)
            parts.append(row.dump(value))  # type: ignore[misc]
        parts.append("}\n")
        return "".join(parts).encode()


class Record:
    __slots__ = ()
    _TABLE: ClassVar[_Table]

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Self:
        """Read a decoded JSON object, or raise ``bad_request`` naming the field."""
        return cast(Self, cls._TABLE.read(obj))

    def to_wire(self) -> dict[str, Any]:
        """The JSON object, fields in wire order, optional ones left out as the table says."""
        return self._TABLE.to_wire(self)


class Frame(Record):
    __slots__ = ()
    TYPE: ClassVar[str]


R = TypeVar("R", bound=type[Record])


@dataclass_transform(frozen_default=True, field_specifiers=(wire,))
def frame(wire_type: str | None, *, first: tuple[str, ...] = ()) -> Callable[[R], R]:
    """Declare a frame: a frozen dataclass whose fields are its table. ``first`` names
    the fields that go before the others on the wire, which follow in their order.
    ``None`` for an object carried inside frames, with no ``type`` of its own."""

    def declare(cls: R) -> R:
        declared: Any = dataclass(frozen=True, slots=True)(cls)
        if wire_type is not None:
            declared.TYPE = wire_type
        declared._TABLE = _Table(declared, wire_type, first)
        return cast(R, declared)

    return declare

"""Plain-Python acceptance checks compiled from the marshmallow schemas.

Why it exists: marshmallow builds a result, an error store and a call chain
for every field of every change: the costliest single check on the hub's push
path (bench/README.md, bench_hub.py). Almost every change is valid, so the hub asks a cheaper
question first: *does the schema certainly accept this?*

Rules this module owns:

- The schemas in :mod:`sync.schemas` stay the one statement of the rules; a
  check is compiled from a schema's declared fields, validators and
  ``validates_schema`` hooks, never written by hand beside it.
- A check answers True only if the schema's ``validate`` would find no error.
  False means "not sure": the caller runs the schema itself, which gives the
  verdict and the field-level messages. So a check may be stricter than the
  schema (a ``str`` subclass, a value a validator raised on for any reason),
  never looser.
- A field class or validator of :mod:`sync.schemas` states its own check as
  an ``accepts(value)`` method defined on that very class, beside the
  ``_deserialize`` or ``__call__`` it mirrors; a subclass without one of its
  own is not compiled.
- Anything the compiler does not know (a field class, a validator, a hook
  with ``pass_original`` or ``pass_collection``, a field's own pre/post-load
  step) is refused when the schema is compiled, at import: a new kind of rule
  must be taught here before it can pass unseen.
- Hooks receive the data as given, keyed by attribute name. That equals what
  marshmallow would hand them only because every field here loads a value
  unchanged (strings, exact ints, bools, dicts; a float field's int is
  compared as the int); the compiler refuses any other loading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, validate

Check = Callable[[Any], bool]

_ALLOWED_HOOKS = {"validates_schema"}


class CompileError(TypeError):
    """The schema holds a rule this module cannot check (see the rules above)."""


def compile_schema(schema: Schema) -> Check:
    """A check for ``schema.validate(data)`` with the schema's own ``partial`` setting."""
    if schema.many or schema.only or schema.exclude or schema.unknown != "raise":
        raise CompileError(f"{type(schema).__name__}: only strict, whole, single-object schemas are compiled")
    if not isinstance(schema.partial, bool | None):
        raise CompileError(f"{type(schema).__name__}: partial must be True or False")
    return _compile(type(schema), partial=bool(schema.partial))


def _compile(cls: type[Schema], *, partial: bool) -> Check:
    instance = cls()
    hooks = []
    for tag, entries in cls._hooks.items():
        if entries and tag not in _ALLOWED_HOOKS:  # (a defaultdict: marshmallow adds empty tags)
            raise CompileError(f"{cls.__name__}: hook {tag!r} is not compiled")
        for name, pass_collection, options in entries:
            if pass_collection or options.get("pass_original"):
                raise CompileError(f"{cls.__name__}.{name}: only per-object hooks without pass_original")
            hooks.append(getattr(instance, name))
    known: dict[str, tuple[str, Check]] = {}
    required: list[str] = []
    for name, field in instance.load_fields.items():  # a dump-only field is unknown on load
        key = field.data_key or name
        known[key] = (field.attribute or name, _field_check(field, partial=partial))
        if field.required and not partial:
            required.append(key)

    def check(data: Any) -> bool:
        if type(data) is not dict:
            return False
        for key in required:
            if key not in data:
                return False
        loaded = {}
        for key, value in data.items():
            entry = known.get(key)
            if entry is None or not entry[1](value):
                return False
            loaded[entry[0]] = value
        for hook in hooks:
            try:
                hook(loaded, partial=partial, many=False, unknown="raise")
            except Exception:  # "not sure": the schema will say what is wrong
                return False
        return True

    return check


def _field_check(field: fields.Field[Any], *, partial: bool) -> Check:
    if getattr(field, "pre_load", None) or getattr(field, "post_load", None):
        raise CompileError(f"field {field.name!r}: its own load steps are not compiled")
    base = _type_check(field, partial=partial)
    tests = [_validator_check(v) for v in field.validators]
    allow_none = field.allow_none

    def check(value: Any) -> bool:
        if value is None:
            return allow_none
        return base(value) and all(test(value) for test in tests)

    return check


def _type_check(field: fields.Field[Any], *, partial: bool) -> Check:
    kind = type(field)
    own = kind.__dict__.get("accepts")  # a field class of sync.schemas states its own check
    if own is not None:
        return own.__get__(field)  # type: ignore[no-any-return]
    if kind in (fields.String, fields.Email):  # Email's own check is among its validators
        return _is_str
    if isinstance(field, fields.Nested) and kind is fields.Nested:
        nested = field.nested
        if not (isinstance(nested, type) and issubclass(nested, Schema)) or field.only or field.exclude or field.many:
            raise CompileError(f"field {field.name!r}: only a nested schema class, whole, is compiled")
        if nested.opts.unknown != "raise":
            raise CompileError(f"field {field.name!r}: the nested schema must refuse unknown fields")
        return _compile(nested, partial=partial)
    if isinstance(field, fields.Dict) and kind is fields.Dict:
        keys = _field_check(field.key_field, partial=partial) if field.key_field else None
        values = _field_check(field.value_field, partial=partial) if field.value_field else None

        def mapping(v: Any) -> bool:
            if type(v) is not dict:
                return False
            if keys is not None:
                for key in v:
                    if not keys(key):
                        return False
            if values is not None:
                for item in v.values():
                    if not values(item):
                        return False
            return True

        return mapping
    raise CompileError(f"field {field.name!r}: {kind.__name__} is not compiled")


def _is_str(v: Any) -> bool:
    return type(v) is str


def _validator_check(validator: Any) -> Check:
    kind = type(validator)
    if kind is validate.Length:
        low, high, equal = validator.min, validator.max, validator.equal
        if equal is not None:
            return lambda v: len(v) == equal
        return lambda v: (low is None or len(v) >= low) and (high is None or len(v) <= high)
    if kind is validate.OneOf:
        choices = tuple(validator.choices)
        if all(type(c) is str for c in choices):
            allowed = frozenset(choices)
            return lambda v: type(v) is str and v in allowed
        return lambda v: v in choices
    if kind is validate.Regexp:
        regex = validator.regex
        return lambda v: regex.match(v) is not None
    if kind is validate.Range:
        low, high = validator.min, validator.max
        low_in, high_in = validator.min_inclusive, validator.max_inclusive

        def in_range(v: Any) -> bool:
            if low is not None and (v < low if low_in else v <= low):
                return False
            return not (high is not None and (v > high if high_in else v >= high))

        return in_range
    own = kind.__dict__.get("accepts")  # a validator of sync.schemas states its own check
    if own is not None:
        return own.__get__(validator)  # type: ignore[no-any-return]
    if kind is validate.Email:

        def email(v: Any) -> bool:
            try:
                validator(v)
            except Exception:  # "not sure": the schema will say what is wrong
                return False
            return True

        return email
    raise CompileError(f"validator {kind.__name__} is not compiled")

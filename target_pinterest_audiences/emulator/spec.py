"""Request/response validation against the vendored Pinterest OpenAPI v5 description.

The OpenAPI 3.0 document is converted once into plain JSON Schema (2020-12):
``nullable: true`` becomes a ``null`` alternative, internal ``$ref``s are made
absolute so that any sub-schema can be validated on its own through a
``referencing`` registry holding the whole document, and ``discriminator`` is
honoured by additionally validating against the mapped schema.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILE = "openapi-v5-audiences.json"
SPEC_URI = "urn:pinterest-openapi-v5"
BASE_PATH = "/v5"
_MAX_MESSAGE = 400
# Verdicts on page items remembered, by their JSON: enough for several 5,000-list accounts.
ITEM_VERDICTS = 50_000
_MAX_VALUE_REPR = 80
_NAME_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "paths",
        "schemas",
        "parameters",
        "responses",
        "content",
        "securitySchemes",
        "mapping",
        "scopes",
        "$defs",
        "definitions",
    }
)


def load_spec_document() -> dict[str, Any]:
    """The vendored OpenAPI document, as published (unconverted)."""
    text = resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _convert(node: Any, names: bool = False) -> Any:
    """OpenAPI 3.0 schema dialect -> JSON Schema 2020-12 (recursively).

    ``names`` is true for maps whose keys are names (``properties``, ``paths``...),
    not keywords.
    """
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: _convert(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#"):
            out[key] = SPEC_URI + value
        elif key in ("example", "examples", "discriminator", "description"):
            out[key] = value  # annotations; never converted (examples are data)
        else:
            out[key] = _convert(value, names=key in _NAME_MAPS)
    if out.pop("nullable", False) is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _error_text(where: str, error: ValidationError) -> str:
    location = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message
    if len(repr(error.instance)) > _MAX_VALUE_REPR:
        # never echo (possibly personal) request data at length: name the rule instead
        expected = json.dumps(error.validator_value)
        message = f"value ({type(error.instance).__name__}) fails {error.validator!r}: {expected}"
    return _short(f"{where}{location}: {message}")


class SchemaChecker:
    """Validates an instance against one (converted) schema, honouring discriminators."""

    def __init__(self, schema: dict[str, Any], spec: Spec) -> None:
        self._validator = Draft202012Validator(schema, registry=spec.registry)
        self._spec = spec
        self._discriminator: tuple[str, dict[str, SchemaChecker]] | None = None
        resolved = spec.resolve(schema)
        disc = resolved.get("discriminator")
        if isinstance(disc, dict) and isinstance(disc.get("mapping"), dict):
            mapping = {
                value: SchemaChecker({"$ref": SPEC_URI + ref}, spec)
                for value, ref in disc["mapping"].items()
            }
            self._discriminator = (str(disc["propertyName"]), mapping)

    def errors(self, instance: Any, where: str) -> list[str]:
        found = [_error_text(where, e) for e in self._validator.iter_errors(instance)]
        if not found and self._discriminator is not None and isinstance(instance, dict):
            prop, mapping = self._discriminator
            sub = mapping.get(instance.get(prop))  # type: ignore[arg-type]
            if sub is not None:
                found = sub.errors(instance, where)
        return found


class PageChecker:
    """A page answer (``{"items": [...], "bookmark": ...}``), checked as a whole but faster.

    Validating a page is validating its envelope (the schema with its array's ``items``
    schema replaced by ``true``) and each element against the ``items`` schema: the same
    verdict, since a JSON Schema judges an array's elements one by one, each on its own.
    Each element's verdict is remembered by its JSON text (the item as sent, decoded again to
    be judged), so an item served again unchanged, as every page of a big account is, is not
    validated again; any change to it (a status, a size, a time) is a new text and is
    validated. An element new to the checker is judged property by property when its schema
    asserts nothing but ``type: object`` and ``properties`` (as a customer list's and an
    audience's do): the same verdict again, since ``properties`` judges each property on its
    own, and each property's verdict is remembered by its name and JSON text, so the values
    most items share (an account id, a status, a type) are not validated again either.
    Nothing is sampled or skipped: every property of every element of every page is judged.
    """

    def __init__(
        self,
        envelope: SchemaChecker,
        field: str,
        item: SchemaChecker,
        properties: PropertyChecker | None = None,
    ) -> None:
        self._envelope = envelope
        self._field = field
        self._item = item
        self._properties = properties
        self._verdict = functools.lru_cache(maxsize=ITEM_VERDICTS)(self._judge)

    def _judge(self, text: bytes) -> tuple[str, ...]:
        item = _json_decode(text)
        if self._properties is not None and isinstance(item, dict):
            return tuple(self._properties.errors(item))
        return tuple(self._item.errors(item, ""))

    def errors(self, instance: Any, where: str) -> list[str]:
        found = self._envelope.errors(instance, where)
        items = instance.get(self._field) if isinstance(instance, dict) else None
        if not isinstance(items, list):
            return found  # the envelope said what is wrong
        for index, item in enumerate(items):
            here = f"{where}.{self._field}[{index}]"
            try:
                text = _json_text(item)
            except (TypeError, ValueError, OverflowError):  # not JSON: judged as it is
                found.extend(self._item.errors(item, here))
                continue
            found.extend(_short(here + error) for error in self._verdict(text))
        return found


class PropertyChecker:
    """An object judged property by property (for a schema of ``type: object`` and
    ``properties`` only), each property's verdict remembered by its name and JSON text; a
    property whose own schema is of that kind (an audience's ``rule``) is judged the same way,
    so that one new value in it does not mean validating the whole property again."""

    def __init__(self, properties: dict[str, Any], spec: Spec) -> None:
        self._checkers = {name: SchemaChecker(schema, spec) for name, schema in properties.items()}
        self._nested: dict[str, PropertyChecker] = {}
        for name, schema in properties.items():
            inner = _object_properties(schema, spec)
            if inner is not None:
                self._nested[name] = PropertyChecker(inner, spec)
        self._verdict = functools.lru_cache(maxsize=ITEM_VERDICTS)(self._judge)

    def _judge(self, name: str, text: bytes) -> tuple[str, ...]:
        return tuple(self._checkers[name].errors(_json_decode(text), f".{name}"))

    def errors(self, instance: dict[str, Any]) -> list[str]:
        """The errors of a decoded JSON object, each located from the object (``.name...``)."""
        found: list[str] = []
        for name, value in instance.items():
            nested = self._nested.get(name)
            if nested is not None and isinstance(value, dict):
                found.extend(_short(f".{name}{error}") for error in nested.errors(value))
            elif name in self._checkers:
                found.extend(self._verdict(name, _json_text(value)))
        return found


_ANNOTATIONS = frozenset({"title", "description", "example", "examples"})


def _object_properties(schema: Any, spec: Spec) -> dict[str, Any] | None:
    """The ``properties`` of a schema asserting only ``type: object`` and ``properties``
    (annotations aside, through bare ``$ref``s); None for any other schema."""
    for _ in range(20):
        if not isinstance(schema, dict) or "$ref" not in schema:
            break
        if set(schema) - _ANNOTATIONS != {"$ref"}:
            return None
        schema = spec.resolve({"$ref": schema["$ref"]})
    if not isinstance(schema, dict) or set(schema) - _ANNOTATIONS != {"type", "properties"}:
        return None
    properties = schema["properties"]
    if schema["type"] != "object" or not isinstance(properties, dict):
        return None
    return properties


def _split_page_schema(schema: dict[str, Any], spec: Spec) -> tuple[dict[str, Any], str, Any]:
    """(the envelope, the array's field, its items schema) of a page schema: ``allOf`` parts,
    one of which gives an array field an ``items`` schema; KeyError if it is not one."""
    resolved = spec.resolve(schema)
    for index, part in enumerate(resolved.get("allOf") or []):
        for name, prop in (part.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("type") == "array" and "items" in prop:
                envelope = copy.deepcopy(resolved)
                envelope["allOf"][index]["properties"][name] = {**prop, "items": True}
                return envelope, name, prop["items"]
    raise KeyError("not a page schema")


def response_checker(schema: dict[str, Any], spec: Spec) -> SchemaChecker | PageChecker:
    """The checker of an answer's schema: a ``PageChecker`` for pages, else a whole one."""
    try:
        envelope, name, item = _split_page_schema(schema, spec)
    except KeyError:
        return SchemaChecker(schema, spec)
    properties = _object_properties(item, spec)
    return PageChecker(
        SchemaChecker(envelope, spec),
        name,
        SchemaChecker(item, spec),
        None if properties is None else PropertyChecker(properties, spec),
    )


@dataclass
class Parameter:
    name: str
    location: str
    required: bool
    schema: dict[str, Any]
    checker: SchemaChecker


@dataclass
class Operation:
    method: str
    template: str
    operation_id: str
    regex: re.Pattern[str]
    parameters: list[Parameter]
    body_content_type: str | None
    body_required: bool
    body_checker: SchemaChecker | None
    responses: dict[str, SchemaChecker | PageChecker] = field(default_factory=dict)
    scopes: tuple[str, ...] = ()  # OAuth scopes its `security` asks of a bearer token
    ratelimit_category: str | None = None  # its `x-ratelimit-category` (ads_read, ...)

    def response_checker(self, status: int) -> SchemaChecker | PageChecker | None:
        return self.responses.get(str(status)) or self.responses.get("default")


@dataclass
class CheckedRequest:
    """Outcome of validating one request: the parsed parts plus what is wrong."""

    path_params: dict[str, str]
    query: dict[str, Any]
    body: Any
    errors: list[str]


class Spec:
    """Operations of the vendored spec, with pre-built validators."""

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        raw = document if document is not None else load_spec_document()
        self.document: dict[str, Any] = _convert(copy.deepcopy(raw))
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.operations: list[Operation] = []
        for template, item in self.document["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                self.operations.append(self._build(method.upper(), template, shared, op))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow a chain of top-level ``$ref``s inside the document."""
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = str(schema["$ref"])
            pointer = ref.split("#", 1)[1] if "#" in ref else ""
            node: Any = self.document
            for part in pointer.strip("/").split("/") if pointer else []:
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
            seen += 1
        return schema

    def _build(
        self, method: str, template: str, shared: list[Any], op: dict[str, Any]
    ) -> Operation:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(BASE_PATH + template))
        params: list[Parameter] = []
        for p in [*shared, *op.get("parameters", [])]:
            p = self.resolve(p)
            schema = p.get("schema", {})
            params.append(
                Parameter(
                    name=p["name"],
                    location=p["in"],
                    required=bool(p.get("required", False)),
                    schema=self.resolve(schema),
                    checker=SchemaChecker(schema, self),
                )
            )
        body_ct: str | None = None
        body_checker: SchemaChecker | None = None
        body_required = False
        if "requestBody" in op:
            rb = self.resolve(op["requestBody"])
            body_required = bool(rb.get("required", False))
            content = rb.get("content", {})
            body_ct = next(iter(content))
            body_checker = SchemaChecker(content[body_ct].get("schema", {}), self)
        responses: dict[str, SchemaChecker | PageChecker] = {}
        for status, resp in op.get("responses", {}).items():
            resp = self.resolve(resp)
            json_content = resp.get("content", {}).get("application/json")
            if json_content and "schema" in json_content:
                responses[str(status)] = response_checker(json_content["schema"], self)
        return Operation(
            method=method,
            template=template,
            operation_id=str(op.get("operationId", f"{method} {template}")),
            regex=re.compile(f"^{pattern}$"),
            parameters=params,
            body_content_type=body_ct,
            body_required=body_required,
            body_checker=body_checker,
            responses=responses,
            scopes=_oauth_scopes(op),
            ratelimit_category=op.get("x-ratelimit-category"),
        )

    def match(self, method: str, path: str) -> tuple[Operation | None, bool]:
        """(operation, path_known): the operation for method+path, if any."""
        path_known = False
        for op in self.operations:
            if op.regex.match(path):
                path_known = True
                if op.method == method:
                    return op, True
        return None, path_known

    def methods_at(self, path: str) -> list[str]:
        """The methods the spec has for ``path`` (none: a path it does not know)."""
        return sorted({op.method for op in self.operations if op.regex.match(path)})

    def check_request(
        self,
        op: Operation,
        path: str,
        raw_query: str,
        content_type: str | None,
        raw_body: bytes,
    ) -> CheckedRequest:
        errors: list[str] = []
        m = op.regex.match(path)
        path_params = {k: v for k, v in (m.groupdict() if m else {}).items()}
        query_lists = parse_qs(raw_query, keep_blank_values=True)
        query: dict[str, Any] = {}
        known_query = {p.name for p in op.parameters if p.location == "query"}
        for name in sorted(set(query_lists) - known_query):
            errors.append(_short(f"query parameter {name!r} is not defined for {op.operation_id}"))
        for p in op.parameters:
            if p.location == "path":
                value: Any = path_params.get(p.name)
                errors.extend(p.checker.errors(value, f"path parameter {p.name}"))
            elif p.location == "query":
                values = query_lists.get(p.name)
                if not values:
                    if p.required:
                        errors.append(f"query parameter {p.name!r} is required")
                    continue
                if len(values) > 1:
                    errors.append(f"query parameter {p.name!r} given {len(values)} times")
                value = _coerce(values[0], p.schema)
                query[p.name] = value
                errors.extend(p.checker.errors(value, f"query parameter {p.name}"))
        body: Any = None
        if op.body_checker is None:
            if raw_body:
                errors.append(f"{op.operation_id} takes no request body")
        elif not raw_body:
            if op.body_required:
                errors.append(f"{op.operation_id} requires a {op.body_content_type} body")
        else:
            media = (content_type or "").split(";", 1)[0].strip().lower()
            if media != op.body_content_type:
                errors.append(
                    f"Content-Type must be {op.body_content_type}, got {media or 'nothing'}"
                )
            body, parse_error = _parse_body(media, raw_body)
            if parse_error is not None:
                errors.append(parse_error)
            else:
                errors.extend(op.body_checker.errors(body, "body"))
        return CheckedRequest(path_params=path_params, query=query, body=body, errors=errors)


def _oauth_scopes(op: dict[str, Any]) -> tuple[str, ...]:
    """The scopes of the operation's ``pinterest_oauth2`` security requirement."""
    for requirement in op.get("security", []):
        if "pinterest_oauth2" in requirement:
            return tuple(requirement["pinterest_oauth2"])
    return ()


def _coerce(text: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def _parse_body(media: str, raw: bytes) -> tuple[Any, str | None]:
    if media == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            return None, _short(f"body is not valid form data: {exc}")
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}, None
    try:
        # msgspec: a 10,000-hash body parses several times faster than with json.
        return _json_decode(raw), None
    except msgspec.DecodeError as exc:
        return None, _short(f"body is not valid JSON: {exc}")


def parse_body(content_type: str | None, raw: bytes) -> Any:
    """Best-effort parse of a body for the request log (None when unparsable/empty)."""
    if not raw:
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    body, error = _parse_body(media, raw)
    return None if error else body


_json_decode = msgspec.json.Decoder().decode
_json_text = msgspec.json.encode  # keys in their order, as sent

"""The versioned JSON Schema of :class:`~avdetect.report.model.DetectionReport` and its validator.

The schema lives in ``detection_report.schema.json`` beside this module (JSON Schema draft
2020-12). :func:`validate_report` uses the ``jsonschema`` package when it is installed and
otherwise a small built-in validator for the keywords the schema uses (``type``, ``enum``,
``const``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``,
``maxItems``, ``minimum``, ``maximum``, ``pattern``), so reports are checked the same way
with or without the optional dependency.
"""
from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

from avdetect.errors import ReportError

SCHEMA_FILE = Path(__file__).with_name("detection_report.schema.json")

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
}


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    """The report's JSON Schema as a dict."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _errors(value: Any, schema: dict, where: str) -> list[str]:
    """Every violation of ``schema`` by ``value`` (paths like ``$.tracks.visual[3]``)."""
    errs: list[str] = []
    if "const" in schema and value != schema["const"]:
        return [f"{where}: must be {schema['const']!r}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: must be one of {schema['enum']}, got {value!r}"]
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [f"{where}: must be of type {'/'.join(types)}, got {type(value).__name__}"]
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errs.append(f"{where}: {value[:40]!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(f"{where}: needs at least {schema['minItems']} items, has {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{where}: allows at most {schema['maxItems']} items, has {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                errs += _errors(item, schema["items"], f"{where}[{i}]")
                if len(errs) > 20:
                    break
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{where}: missing required property {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errs += _errors(item, props[key], f"{where}.{key}")
            elif extra is False:
                errs.append(f"{where}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                errs += _errors(item, extra, f"{where}.{key}")
    return errs


def report_errors(data: Any) -> list[str]:
    """All schema violations of a report dict (empty list: valid). Uses the built-in validator."""
    return _errors(data, load_schema(), "$")


def validate_report(data: Any, path: str | None = None, use_jsonschema: bool | None = None) -> None:
    """Raise :class:`ReportError` (one line) unless ``data`` follows the report schema.

    ``use_jsonschema``: None = use the ``jsonschema`` package if installed, else the built-in
    validator; True / False force one.
    """
    if use_jsonschema is None:
        import importlib.util

        use_jsonschema = importlib.util.find_spec("jsonschema") is not None
    if use_jsonschema:
        import jsonschema

        validator = jsonschema.Draft202012Validator(load_schema())
        errs = [f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    else:
        errs = report_errors(data)
    if errs:
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        raise ReportError(f"not a valid avdetect detection report: {errs[0]}{more}", path)


def load_report_dict(path: str | Path) -> dict:
    """Read and validate a report JSON file; returns the dict (what writers take)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError("report file not found", p) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReportError(f"not JSON: {err}", p) from None
    validate_report(data, str(p))
    return data

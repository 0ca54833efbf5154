"""Loading settings: defaults -> YAML file -> ``${ENV}`` expansion -> validation, once, here.

This is the only module that reads YAML. It turns the file into typed settings and those into
the frozen config objects the packages take (``kvdb.StoreConfig``...). Every error names the
file, the line, the field path and what was expected::

    config/kvdb.yaml:14: node.retention.max_events: expected an integer >= 0, got 'lots'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from ..errors import ConfigError
from .problems import describe_validation_errors
from .root import DEFAULTS_SOURCE, Settings
from .yaml_graph import check_graph

__all__ = ["MAX_FILE_BYTES", "load_settings"]

MAX_FILE_BYTES = 10 * 1024 * 1024


def load_settings(
    path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> Settings:
    """Settings from ``path`` (YAML), or the defaults when ``path`` is None. ``overrides``
    (e.g. command-line options) replace fields per section; None values are ignored."""
    data, lines, source = _read_yaml(Path(path)) if path is not None else ({}, {}, DEFAULTS_SOURCE)
    for section, fields in (overrides or {}).items():
        given = {k: v for k, v in fields.items() if v is not None}
        if given:
            current = data.get(section)
            data[section] = {**(current if isinstance(current, dict) else {}), **given}
    return _validate(data, source, lines)


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int], str]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: the config file is over {MAX_FILE_BYTES} bytes")
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    root, data = _parse(text, path)
    if data is None:
        data = {}
    lines = _line_numbers(root)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of sections (node, server, ...)")
    return _expand_env(data, (), str(path), lines), lines, str(path)


def _parse(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    """The document's node graph and its data, parsed once. Before anything is built from it
    the graph is checked (``check_graph``): an alias bomb is refused while it is still small
    (aliases share nodes until the data is built), and so is a mapping with a key twice."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        check_graph(root, str(path))
        return root, loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: the YAML nests too deeply") from None
    finally:
        loader.dispose()


def _validate(data: dict[str, Any], source: str, lines: dict[tuple[Any, ...], int]) -> Settings:
    try:
        node = data.get("node")
        context = {"node_id": node.get("id") if isinstance(node, dict) else None}
        settings = Settings.model_validate({**data, "source": source}, context=context)
    except PydanticValidationError as exc:
        problems = describe_validation_errors(
            exc.errors(),
            where=lambda loc: _where(source, lines, loc),
            unknown_field="unknown field; check the spelling against config/kvdb.yaml",
        )
        raise ConfigError("\n".join(problems)) from exc
    settings._lines = lines
    return settings


def _where(source: str, lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    line = _nearest_line(lines, loc)
    return f"{source}:{line}" if line else source


def _nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _line_numbers(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each field path in the YAML document to its 1-based line."""
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines.update(_line_numbers(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_numbers(item, (*path, index)))
    return lines


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, path: tuple[Any, ...], source: str, lines: dict[Any, int]) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string; ``$$`` is a literal $."""
    if isinstance(value, dict):
        return {k: _expand_env(v, (*path, k), source, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*path, i), source, lines) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        line = _nearest_line(lines, path)
        raise ConfigError(
            f"{source}:{line}: {'.'.join(map(str, path))}: environment variable {name} is not "
            f"set; set it or write ${{{name}:-default}}"
        )

    return _ENV_REF.sub(substitute, value)

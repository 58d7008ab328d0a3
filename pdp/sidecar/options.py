"""Layered options for both pdp processes: a YAML file, then ``PDP_*`` variables, then flags.

`pdp run` and `pdp control` describe their options as one frozen pydantic model each; these
functions gather the raw values of each layer for such a model, so that the two processes read
configuration the same way and a bad value is reported in the same words. The layers are merged
here rather than by pydantic-settings, whose import pulls in every settings provider it supports
(dotenv, CLI, cloud secret stores) and cost the sidecar ~6 MiB of idle RSS and ~50 ms of start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, get_origin

from pydantic import BaseModel

ENV_PREFIX = "PDP_"


def _is_structured(annotation: Any) -> bool:
    """Whether a field holds a list or a mapping (given as JSON in the environment)."""
    return get_origin(annotation) in (list, dict)


class LayeredOptions(NamedTuple):
    """The merged options, and where each came from, so that a bad value can be traced back."""

    values: dict[str, Any]
    sources: dict[str, str]
    """Option name → ``config file PATH`` or the ``PDP_*`` variable as spelled; flags are absent."""


def _environment(model: type[BaseModel], environ: Mapping[str, str],
                 error: type[Exception]) -> dict[str, tuple[str, Any]]:
    # The options of `model` set by PDP_<FIELD> variables (names case-insensitive, lists and
    # mappings as JSON), as option name → (the variable as spelled, its value). Raises `error`
    # naming the variable whose JSON does not parse.
    by_name = {key.upper(): (key, value) for key, value in environ.items()}
    _refuse_near_misses(model, by_name, error)
    options: dict[str, tuple[str, Any]] = {}
    for name, field in model.model_fields.items():
        found = by_name.get(ENV_PREFIX + name.upper())
        if found is None:
            continue
        variable, text = found
        if not _is_structured(field.annotation):
            options[name] = (variable, text)
            continue
        try:
            options[name] = (variable, json.loads(text))
        except json.JSONDecodeError as exc:
            raise error(
                f"{variable} must be JSON for a list or mapping option "
                f"({exc.msg} at column {exc.colno})"
            ) from None
    return options


def _refuse_near_misses(model: type[BaseModel], by_name: Mapping[str, tuple[str, str]],
                        error: type[Exception]) -> None:
    # Other PDP_* variables are not ours to refuse (PDP_CONFIG, PDP_BUILTIN_BUNDLE, another
    # tool's), but one an "s" away from an option is a typo of it: the flags are singular
    # (--revoked-key-id) and the options plural, and a PDP_REVOKED_KEY_ID that was silently
    # ignored would leave a key trusted that its operator meant to revoke.
    options = {ENV_PREFIX + name.upper() for name in model.model_fields}
    for upper, (variable, _) in sorted(by_name.items()):
        if not upper.startswith(ENV_PREFIX) or upper in options:
            continue
        for meant in (upper + "S", upper.removesuffix("S")):
            if meant != upper and meant in options:
                raise error(f"{variable} is not an option; did you mean {meant}?")


def config_file_options(model: type[BaseModel], path: Path, *,
                        error: type[Exception]) -> dict[str, Any]:
    """The options of ``model`` in the YAML file at ``path``; raises ``error`` for an unreadable
    file, invalid YAML, a file that is not a mapping, or an option ``model`` does not have."""
    # Imported here: only a process started with a config file needs a YAML parser.
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
                    ) from None
    except yaml.YAMLError as exc:
        raise error(f"config file {path} is not valid YAML: {exc}") from None
    except RecursionError:
        # PyYAML builds nested collections recursively; `[[[[...` thousands deep exhausts the
        # stack before any option could be read. No option is nested more than a level or two.
        raise error(f"config file {path} is nested too deeply to be a config file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise error(f"config file {path} must hold a mapping of option names to values")
    unknown = sorted(str(key) for key in raw if key not in model.model_fields)
    if unknown:
        raise error(f"config file {path}: unknown option(s): {', '.join(unknown)}")
    return {str(key): value for key, value in raw.items()}


def gather_options(model: type[BaseModel], flags: Mapping[str, Any], *,
                   config_file: Path | None, environ: Mapping[str, str],
                   error: type[Exception]) -> LayeredOptions:
    """The config file (``config_file``, else the one ``PDP_CONFIG`` names), then the
    environment, then the flags the user typed: a later layer wins. Each value keeps its source,
    for naming it in an error."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    named = environ.get(f"{ENV_PREFIX}CONFIG")
    config_file = config_file or (Path(named) if named else None)
    if config_file:
        values.update(config_file_options(model, config_file, error=error))
        sources.update(dict.fromkeys(values, f"config file {config_file}"))
    for name, (variable, value) in _environment(model, environ, error).items():
        values[name], sources[name] = value, variable
    values.update(flags)
    for name in flags:  # a flag is named like its option, and the user just typed it
        sources.pop(name, None)
    return LayeredOptions(values, sources)

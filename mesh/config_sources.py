"""Where a node's configuration comes from: flags, environment and a TOML file.

Precedence, strongest first: command-line flags, ``CHORUS_*`` environment variables, the
TOML file (``--config`` or ``CHORUS_CONFIG``), the defaults of ``NodeConfig``. Any invalid
value raises ``ConfigError`` with one line that names the option and where the value came
from; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mesh.config import NodeConfig
from mesh.config_options import BY_NAME, OPTIONS
from mesh.errors import ConfigError
from mesh.health_token import read_token_file

__all__ = ["load_config"]


def load_config(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> NodeConfig:
    """Build a NodeConfig; ``flags`` holds only the options given on the command line."""
    environ = os.environ if environ is None else environ
    merged: dict[str, object] = {}
    sources: dict[str, str] = {}
    path = config_file or environ.get("CHORUS_CONFIG")
    if path:
        for key, value in _read_toml(path).items():
            merged[key] = value
            sources[key] = f"{key} in {path}"
    for option in OPTIONS:
        if option.env in environ:
            merged[option.name] = environ[option.env]
            sources[option.name] = f"environment variable {option.env}"
    for name, value in flags.items():
        if value is not None:
            merged[name] = value
            sources[name] = f"flag {BY_NAME[name].flag}"
    parsed: dict[str, Any] = {}
    for name, raw in merged.items():
        try:
            parsed[name] = BY_NAME[name].parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {sources[name]}: {exc}") from None
    token_file = parsed.get("health_token_file")
    if token_file is not None:
        if parsed.get("health_token") is not None:
            raise ConfigError(
                f"give the token once: {sources['health_token']} and"
                f" {sources['health_token_file']} are both set"
            )
        parsed["health_token"] = read_token_file(token_file, sources["health_token_file"])
    return NodeConfig(**parsed)


def _read_toml(path: str) -> dict[str, object]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown option(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(BY_NAME))})"
        )
    return data

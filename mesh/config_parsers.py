"""How one configuration value is read: a parser per kind of value.

Each parser takes what a flag, an environment variable or a TOML file gave (a string, or
TOML's own types) and returns the typed value, or raises ``ValueError`` with a message that
``mesh.config_sources`` prefixes with the option's name and source. ``mesh.config_options``
names the parser of each option.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mesh.admission_formats import format_public_key, parse_public_key
from mesh.errors import ConfigError
from mesh.peer_id import is_peer_id

__all__ = [
    "boolean",
    "choice",
    "fraction",
    "integer",
    "non_negative_float",
    "non_negative_int",
    "number",
    "optional_positive_float",
    "optional_text",
    "peer_ids",
    "port",
    "positive_float",
    "positive_int",
    "public_keys",
    "string_list",
    "text",
]


def port(raw: object) -> int:
    value = integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port (0-65535)")
    return value


def integer(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    raise ValueError(f"expected an integer, got {raw!r}")


def non_negative_int(raw: object) -> int:
    value = integer(raw)
    if value < 0:
        raise ValueError(f"must be zero or more, got {value}")
    return value


def positive_int(raw: object) -> int:
    value = integer(raw)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def number(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return value


def non_negative_float(raw: object) -> float:
    value = number(raw)
    if value < 0:
        raise ValueError(f"must be zero or more, got {raw!r}")
    return value


def positive_float(raw: object) -> float:
    value = number(raw)
    if value <= 0:
        raise ValueError(f"must be a positive number, got {raw!r}")
    return value


def optional_positive_float(raw: object) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    return positive_float(raw)


def fraction(raw: object) -> float:
    value = positive_float(raw)
    if value > 1:
        raise ValueError(f"must be a fraction in (0, 1], got {raw!r}")
    return value


def boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ValueError(f"expected true or false, got {raw!r}")


def text(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"expected a non-empty string, got {raw!r}")
    return raw.strip()


def optional_text(raw: object) -> str | None:
    if isinstance(raw, str) and not raw.strip():
        return None
    return text(raw)


def string_list(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list | tuple):
        if not all(isinstance(item, str) for item in raw):
            raise ValueError(f"expected a list of strings, got {raw!r}")
        items = [item.strip() for item in raw]
    else:
        raise ValueError(f"expected a comma-separated list, got {raw!r}")
    return tuple(item for item in items if item)


def peer_ids(raw: object) -> tuple[str, ...]:
    peers = string_list(raw)
    for peer in peers:
        if not is_peer_id(peer):
            raise ValueError(f"{peer[:60]!r} is not a libp2p peer ID (base58, like 12D3KooW...)")
    return tuple(dict.fromkeys(peers))  # without repeats, in the order given


def public_keys(raw: object) -> tuple[str, ...]:
    keys = []
    for index, text in enumerate(string_list(raw), start=1):
        try:
            # Kept as canonical base64 text, so the config stays plain data; decoded again
            # by mesh.admission.policy_from_config.
            keys.append(format_public_key(parse_public_key(text)))
        except ConfigError as exc:
            raise ValueError(f"key #{index}: {exc}") from None
    return tuple(dict.fromkeys(keys))


def choice(*allowed: str) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        value = text(raw).lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse

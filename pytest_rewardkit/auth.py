"""Fireworks credentials: the API key and the account id, found in one documented order.

Order of precedence, first found wins, for each value separately:

1. the environment: the API key from ``FIREWORKS_API_KEY`` (or the variable ``--rk-api-key-env``
   names), the account id from ``FIREWORKS_ACCOUNT_ID``;
2. ``~/.fireworks/auth.ini`` (``FIREWORKS_AUTH_FILE`` names another file): ``api_key`` and
   ``account_id``, either as plain ``key = value`` lines or in a ``[fireworks]`` section.

The key is held as a `pydantic.SecretStr`: its repr and str are masked, so it cannot reach a log,
an exception message or a results file by being formatted; only `headers()` reveals it, to the
one place that needs it (the Authorization header, which cassettes scrub).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from pytest_rewardkit.errors import ConfigError

API_KEY_ENV = "FIREWORKS_API_KEY"
ACCOUNT_ID_ENV = "FIREWORKS_ACCOUNT_ID"
AUTH_FILE_ENV = "FIREWORKS_AUTH_FILE"
SECTION = "fireworks"


class AuthError(ConfigError):
    """No usable credentials; the message names every place that was looked at and how to fix it."""


@dataclass(frozen=True)
class Credentials:
    """Where each value came from is kept so that errors can say which key was rejected."""

    api_key: SecretStr
    api_key_source: str
    account_id: str | None = None
    account_id_source: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}

    @property
    def secrets(self) -> list[str]:
        """Values a cassette or report must never contain (for the recorder's check on save)."""
        return [self.api_key.get_secret_value()]


def auth_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    named = env.get(AUTH_FILE_ENV)
    if named:
        return Path(named).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".fireworks" / "auth.ini"


def read_auth_file(path: Path) -> dict[str, str]:
    """The `key = value` pairs of an auth.ini ([fireworks] section, or no section at all); {} if absent.

    Parse errors name the line but never echo it: the line may hold the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AuthError(f"{path}: cannot read credentials file: {exc.strerror}") from None
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    has_section = any(line.strip().startswith("[") for line in text.splitlines())
    try:
        parser.read_string(text if has_section else f"[{SECTION}]\n{text}", source=str(path))
    except configparser.Error as exc:
        # ParsingError lists (line number, line text) pairs; only the number may be shown.
        errors = getattr(exc, "errors", None)
        line = errors[0][0] if errors else getattr(exc, "lineno", None)
        where = f"line {line - (0 if has_section else 1)}" if isinstance(line, int) else "its syntax"
        raise AuthError(
            f"{path}: not an auth.ini file ({type(exc).__name__} at {where}); "
            f"write plain 'api_key = ...' and 'account_id = ...' lines, or put them in a [{SECTION}] section"
        ) from None
    values = dict(parser.items("__defaults__")) if parser.has_section("__defaults__") else {}
    if parser.has_section(SECTION):
        values.update(parser.items(SECTION))
    return {key: value.strip().strip("\"'") for key, value in values.items() if value.strip()}


def _places(api_key_env: str, path: Path) -> str:
    return f"the environment variable {api_key_env}, and 'api_key' in {path} (plain line or [{SECTION}] section)"


def find_api_key(api_key_env: str = API_KEY_ENV, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from the environment, then the auth file (each value separately); None without a key."""
    env = os.environ if environ is None else environ
    path = auth_file(env)
    in_file: dict[str, str] | None = None

    def lookup(variable: str, file_key: str) -> tuple[str | None, str | None]:
        nonlocal in_file
        value = env.get(variable, "").strip()
        if value:
            return value, f"environment variable {variable}"
        if in_file is None:
            in_file = read_auth_file(path)
        return (in_file[file_key], str(path)) if file_key in in_file else (None, None)

    key, key_source = lookup(api_key_env, "api_key")
    if key is None or key_source is None:
        return None
    account, account_source = lookup(ACCOUNT_ID_ENV, "account_id")
    return Credentials(SecretStr(key), key_source, account, account_source)


def load_credentials(
    api_key_env: str = API_KEY_ENV, need_account: bool = False, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials or an AuthError that names every place looked at, in order, and the fix."""
    env = os.environ if environ is None else environ
    path = auth_file(env)
    found = find_api_key(api_key_env, env)
    if found is None:
        raise AuthError(
            f"no Fireworks API key found. Looked in {_places(api_key_env, path)}. "
            f"Fix: export {api_key_env}=<your key>, or write 'api_key = <your key>' in {path}"
        )
    if need_account and not found.account_id:
        raise AuthError(
            f"no Fireworks account id found. Looked in the environment variable {ACCOUNT_ID_ENV}, and "
            f"'account_id' in {path} (plain line or [{SECTION}] section). "
            f"Fix: export {ACCOUNT_ID_ENV}=<your account id>, or write 'account_id = <id>' in {path}"
        )
    return found


def describe_places(api_key_env: str = API_KEY_ENV, environ: Mapping[str, str] | None = None) -> str:
    """Where an API key is looked for, for messages that ask the user to provide one."""
    return _places(api_key_env, auth_file(os.environ if environ is None else environ))

"""The auth module: the order credentials are looked for in, the errors, and that the key never shows."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from pytest_rewardkit.auth import AuthError, Credentials, find_api_key, load_credentials, read_auth_file

KEY = "fw-test-key-0123456789abcdef"


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"HOME": str(tmp_path), **values}


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".fireworks" / "auth.ini"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_environment_wins_over_the_auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_ini(tmp_path, "api_key = from-file-key\naccount_id = file-account\n")
    creds = load_credentials(environ=env(tmp_path, FIREWORKS_API_KEY=KEY, FIREWORKS_ACCOUNT_ID="env-account"))
    assert creds.api_key.get_secret_value() == KEY
    assert (creds.api_key_source, creds.account_id, creds.account_id_source) == (
        "environment variable FIREWORKS_API_KEY",
        "env-account",
        "environment variable FIREWORKS_ACCOUNT_ID",
    )


def test_each_value_falls_back_to_the_file_separately(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_ini(tmp_path, "api_key = from-file-key\naccount_id = file-account\n")
    creds = load_credentials(environ=env(tmp_path, FIREWORKS_API_KEY=KEY))
    assert creds.api_key.get_secret_value() == KEY and creds.account_id == "file-account"
    assert creds.account_id_source == str(path)
    creds = load_credentials(need_account=True, environ=env(tmp_path, FIREWORKS_ACCOUNT_ID="env-account"))
    assert creds.api_key.get_secret_value() == "from-file-key" and creds.api_key_source == str(path)
    assert creds.account_id == "env-account"


@pytest.mark.parametrize(
    "text",
    [
        "api_key = k1\naccount_id = a1\n",
        "[fireworks]\napi_key = k1\naccount_id = a1\n",
        "# comment\n[other]\napi_key = wrong\n\n[fireworks]\napi_key = 'k1'\naccount_id=\"a1\"\n",
    ],
    ids=["plain-lines", "section", "quoted-values-other-section"],
)
def test_auth_ini_forms(tmp_path: Path, text: str) -> None:
    assert read_auth_file(write_ini(tmp_path, text)) == {"api_key": "k1", "account_id": "a1"}


def test_a_named_variable_replaces_fireworks_api_key(tmp_path: Path) -> None:
    creds = find_api_key("MY_PROVIDER_KEY", env(tmp_path, MY_PROVIDER_KEY=KEY, FIREWORKS_API_KEY="other"))
    assert creds is not None and creds.api_key.get_secret_value() == KEY
    assert find_api_key("MY_PROVIDER_KEY", env(tmp_path, FIREWORKS_API_KEY="other")) is None


def test_nothing_found_names_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(AuthError) as info:
        load_credentials("MY_KEY", environ=env(tmp_path, FIREWORKS_API_KEY="   "))
    message = str(info.value)
    assert "environment variable MY_KEY" in message
    assert str(tmp_path / ".fireworks" / "auth.ini") in message and "[fireworks] section" in message
    assert "export MY_KEY=" in message


def test_missing_account_names_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match=r"FIREWORKS_ACCOUNT_ID.*'account_id' in .*auth\.ini"):
        load_credentials(need_account=True, environ=env(tmp_path, FIREWORKS_API_KEY=KEY))


def test_a_malformed_auth_file_names_the_line_but_never_echoes_it(tmp_path: Path) -> None:
    path = write_ini(tmp_path, f"[fireworks]\napi_key = {KEY}\n{KEY} garbage line\n")
    with pytest.raises(AuthError) as info:
        load_credentials(environ=env(tmp_path))
    assert str(path) in str(info.value) and "line 3" in str(info.value)
    assert KEY not in str(info.value) and info.value.__cause__ is None


def test_auth_file_env_names_another_file(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.ini"
    other.write_text(f"api_key={KEY}\n", encoding="utf-8")
    creds = load_credentials(environ={"HOME": str(tmp_path / "nohome"), "FIREWORKS_AUTH_FILE": str(other)})
    assert creds.api_key.get_secret_value() == KEY and creds.api_key_source == str(other)


def test_the_key_never_shows_in_repr_str_logs_or_pickles_by_accident(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    creds = load_credentials(environ=env(tmp_path, FIREWORKS_API_KEY=KEY))
    logging.getLogger("test").warning("credentials %s %r", creds, creds.api_key)
    for text in (repr(creds), str(creds), f"{creds.api_key}", caplog.text):
        assert KEY not in text
    assert creds.headers() == {"Authorization": f"Bearer {KEY}"} and creds.secrets == [KEY]
    assert isinstance(pickle.loads(pickle.dumps(creds)), Credentials)

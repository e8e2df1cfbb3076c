"""Row cassettes: vcrpy format, safe loading, clear errors, request matching, playback order, secrets."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import vcr
import vcr.serialize
import vcr.serializers.yamlserializer

from pytest_rewardkit.recording import (
    REDACTED,
    CassetteError,
    Interaction,
    RowCassette,
    SecretLeak,
    base_url_of,
    cassette_path,
    endpoint_path,
    match_key,
    scrub_headers,
    scrub_uri,
)

URI = "http://127.0.0.1:4010/v1/chat/completions"
BODY: dict[str, Any] = {
    "model": "accounts/fireworks/models/qwen3-30b-a3b",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?\nThink."}],
    "temperature": 0.7,
    "top_p": 0.9,
    "max_tokens": 64,
    "stop": ["\n\n"],
    "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
}
SECRET = "fw-secret-0123456789"


def completion(*contents: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
            for i, c in enumerate(contents)
        ],
    }


def interaction(*contents: str, body: dict[str, Any] | None = None, uri: str = URI) -> Interaction:
    return Interaction(
        method="POST",
        uri=uri,
        request_headers={"Content-Type": "application/json"},
        request_body=body or BODY,
        status=200,
        response_headers={"Content-Type": "application/json"},
        response_body=completion(*contents),
    )


def saved(tmp_path: Path, *interactions: Interaction) -> Path:
    path = tmp_path / "suite" / "model" / "row-1.yaml"
    RowCassette(path, list(interactions)).save([SECRET])
    return path


def contents_of(choices: list[dict[str, Any]]) -> list[str]:
    return [c["message"]["content"] for c in choices]


# -- format ---------------------------------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    original = [interaction("It is 4.\nSure.", "4"), interaction("four", body={**BODY, "n": 1, "user": "u1"})]
    path = saved(tmp_path, *original)
    loaded = RowCassette.load(path)
    assert loaded.exists and loaded.path == path
    assert loaded.interactions == original
    assert not list(path.parent.glob(".*.tmp")), "the temporary file of the atomic write was left behind"


def test_a_missing_file_is_an_empty_cassette(tmp_path: Path) -> None:
    cassette = RowCassette.load(tmp_path / "absent.yaml")
    assert not cassette.exists and cassette.interactions == []


def test_the_file_is_a_vcrpy_cassette(tmp_path: Path) -> None:
    path = saved(tmp_path, interaction("It is 4."))
    text = path.read_text(encoding="utf-8")
    requests, responses = vcr.serialize.deserialize(text, vcr.serializers.yamlserializer)
    [request], [response] = requests, responses
    assert (request.method, request.uri) == ("POST", URI)
    assert json.loads(request.body) == BODY
    assert request.headers["Content-Type"] == "application/json"
    assert response["status"] == {"code": 200, "message": "OK"}
    assert json.loads(response["body"]["string"]) == completion("It is 4.")
    # Readable in a diff: bodies are indented JSON in literal blocks, one field per line.
    assert '"temperature": 0.7,\n' in text and "body: |-\n" in text


def test_vcrpy_itself_replays_the_cassette(tmp_path: Path) -> None:
    path = saved(tmp_path, interaction("It is 4."))
    request = urllib.request.Request(URI, data=json.dumps(BODY).encode(), method="POST")
    with vcr.use_cassette(str(path), record_mode="none"), urllib.request.urlopen(request) as response:
        assert response.status == 200
        assert json.loads(response.read()) == completion("It is 4.")


def test_response_headers_describe_the_stored_decoded_body(tmp_path: Path) -> None:
    exchange = interaction("Janet’s ducks: 18 €")
    exchange.response_headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "content-length": "7"}
    path = saved(tmp_path, exchange)
    _, [response] = vcr.serialize.deserialize(path.read_text(encoding="utf-8"), vcr.serializers.yamlserializer)
    headers = {name.lower(): values for name, values in response["headers"].items()}
    assert "content-encoding" not in headers
    assert headers["content-length"] == [str(len(response["body"]["string"]))]  # vcrpy gives the body as bytes
    # Re-derived on every save, so loading and saving again changes nothing.
    loaded = RowCassette.load(path)
    assert loaded.interactions[0].response_headers == {"Content-Type": "application/json"}
    before = path.read_bytes()
    loaded.save([SECRET])
    assert path.read_bytes() == before


def test_unicode_stays_readable(tmp_path: Path) -> None:
    path = saved(tmp_path, interaction("Janet’s ducks: 18 €"))
    assert "Janet’s ducks: 18 €" in path.read_text(encoding="utf-8")


def test_python_tags_are_refused_by_the_safe_loader(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    path.write_text(
        f"interactions: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
        "version: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(CassetteError, match=rf"{path}:1:15: corrupt cassette .*python/object"):
        RowCassette.load(path)
    assert not marker.exists()


REQUEST = "interactions:\n- request: {method: POST, uri: x, body: '{}'}\n"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("", "1", r"truncated cassette \(the file is empty\)"),
        ("interactions: [\n  - {request: ", "2:3", r"truncated cassette \(not valid YAML: did not find expected node"),
        ("- 1\n- 2\n", "1", r"not a vcrpy cassette \(no 'interactions' list\)"),
        ("interactions: 3\nversion: 1\n", "1", r"not a vcrpy cassette"),
        (REQUEST, "2", r"truncated cassette \(it ends before vcrpy's closing 'version: 1'\)"),
        (REQUEST + "version: 1\n", "2", r"corrupt cassette \(interaction 0 is malformed: KeyError: 'response'\)"),
        (
            "interactions:\n- request: {method: POST, uri: x, body: '{}'}\n"
            '  response:\n    status: {code: 200}\n    body:\n      string: |\n        {\n         "a": 1,\n'
            '         "b": 2,,\n        }\nversion: 1\n',
            "9",
            r"corrupt cassette \(interaction 0 response body is not JSON: Expecting property name",
        ),
        (
            "interactions:\n- request: {method: POST, uri: x, body: 'not json'}\n"
            "  response: {status: {code: 200}, body: {string: '{}'}}\nversion: 1\n",
            "2",
            r"corrupt cassette \(interaction 0 request body is not JSON",
        ),
        (
            REQUEST + "  response: {status: {code: 200}, body: {string: '[1]'}}\nversion: 1\n",
            "3",
            r"corrupt cassette \(interaction 0 response body is not a JSON object",
        ),
        (
            REQUEST + "  response: {status: {code: OK}, body: {string: '{}'}}\nversion: 1\n",
            "2",
            r"corrupt cassette \(interaction 0 is malformed: ValueError",
        ),
        (
            "interactions:\n- request:\n\t  method: POST\nversion: 1\n",
            "3:1",
            r"corrupt cassette \(not valid YAML: found character that cannot start any token",
        ),
    ],
)
def test_a_broken_cassette_is_an_error_naming_file_line_and_fix(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "row.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CassetteError) as caught:
        RowCassette.load(path)
    message = str(caught.value)
    assert re.match(rf"{re.escape(str(path))}:{where}: {problem}", message), message
    assert message.endswith(
        f"restore it from git (git checkout -- {path}) or re-record it "
        "(delete the file, then run with --record-mode=new_episodes)"
    )
    assert path.read_text(encoding="utf-8") == text


RECORDED = Path(__file__).parent.parent / "cassettes" / "math" / "gpt3-gsm8k-solutions" / "gsm8k-test-0000.yaml"


def cut_points(text: str) -> dict[str, int]:
    """Byte-offset-free places to cut a recorded cassette (str offsets; the file is cut as UTF-8)."""
    response = text.index("  response:")
    content = text.index('"content": "Janet eats') + len('"content": "Janet eat')
    block = text.index("string: |-") + len("string: |-\n")
    block_line = text.index("\n", block + 1) + 1
    return {
        "mid-line (the uri)": text.index("uri: http://") + len("uri: http://127.0"),
        "mid-key (respo|nse)": response + len("  respo"),
        "after a key, before its value": text.index("    status:") + len("    status:"),
        "mid-string (a JSON string in a body)": content,
        "inside a block scalar, at a line end": text.index("\n", block_line + 1) + 1,
        "inside a block scalar, mid-line": block_line + 9,
        "mid-unicode character": text.index("Janet’s") + len("Janet"),
        "before the closing version line": text.rindex("version: 1"),
        "mid the closing version line": text.rindex("version: 1") + len("versi"),
    }


@pytest.mark.parametrize("where", list(cut_points(RECORDED.read_text(encoding="utf-8"))))
def test_a_recorded_cassette_truncated_anywhere_is_diagnosed_as_truncated_at_its_last_line(
    tmp_path: Path, where: str
) -> None:
    text = RECORDED.read_text(encoding="utf-8")
    assert RowCassette.load(RECORDED).interactions  # whole, it reads
    data = text.encode("utf-8")[
        : len(text[: cut_points(text)[where]].encode("utf-8")) + (1 if "unicode" in where else 0)
    ]
    cut = tmp_path / "gsm8k-test-0000.yaml"
    cut.write_bytes(data)
    kept = data.decode("utf-8", errors="replace")
    last_line = len(kept.splitlines())
    with pytest.raises(CassetteError) as caught:
        RowCassette.load(cut)
    message = str(caught.value)
    assert re.match(rf"{re.escape(str(cut))}:{last_line}(:\d+)?: truncated cassette \(", message), (where, message)
    assert f"git checkout -- {cut}" in message and "--record-mode=new_episodes" in message
    assert "no recorded request matches" not in message
    assert cut.read_bytes() == data


def test_an_unreadable_cassette_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "row.yaml"
    path.mkdir()
    with pytest.raises(CassetteError, match=rf"^{path}: cannot read cassette"):
        RowCassette.load(path)


@pytest.mark.parametrize(
    ("row_id", "expected"),
    [("gsm8k-test-0001", "gsm8k-test-0001.yaml"), ("row 1/../x", "row_1_.._x-"), ("..", "_-")],
)
def test_cassette_path_is_one_safe_file_per_suite_model_and_row(row_id: str, expected: str) -> None:
    path = cassette_path(Path("/c"), "math", "qwen3", row_id)
    assert path.parent == Path("/c/math/qwen3")
    assert path.name.startswith(expected)


def test_ids_differing_only_in_unsafe_characters_get_different_files() -> None:
    paths = {cassette_path(Path("c"), "s", "m", row_id) for row_id in ("a/b", "a_b", "a b", "a:b")}
    assert len(paths) == 4


# -- matching -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        {"n": 4},
        {"user": "someone"},
        {"metadata": {"run": 3}},
        {"request_id": "abc"},
    ],
)
def test_volatile_body_fields_do_not_affect_matching(variant: dict[str, Any]) -> None:
    assert match_key("POST", URI, {**BODY, **variant}) == match_key("post", URI, BODY)


@pytest.mark.parametrize(
    "uri",
    [
        "https://api.fireworks.ai/v1/chat/completions",
        "http://localhost:9999/v1/chat/completions/",
        "http://127.0.0.1:4010/v1/chat/completions?api_key=x",
        "https://api.fireworks.ai/inference/v1/chat/completions",
        "http://proxy.internal:8080/openai/v1/chat/completions",
        "http://127.0.0.1:4010/chat/completions",
    ],
)
def test_base_url_query_and_trailing_slash_do_not_affect_matching(uri: str) -> None:
    assert match_key("POST", uri, BODY) == match_key("POST", URI, BODY)


def test_key_order_does_not_affect_matching() -> None:
    assert match_key("POST", URI, dict(reversed(list(BODY.items())))) == match_key("POST", URI, BODY)


@pytest.mark.parametrize(
    ("uri", "change"),
    [
        ("http://127.0.0.1:4010/v1/completions", {}),
        ("http://127.0.0.1:4010/v1/other", {}),
        (URI, {"model": "accounts/fireworks/models/other"}),
        (URI, {"messages": [{"role": "user", "content": "What is 2+3?"}]}),
        (URI, {"messages": BODY["messages"][1:]}),
        (URI, {"temperature": 0.8}),
        (URI, {"top_p": 1.0}),
        (URI, {"max_tokens": 65}),
        (URI, {"stop": ["###"]}),
        (URI, {"tools": []}),
        (URI, {"seed": 1}),
    ],
)
def test_endpoint_model_messages_sampling_and_tools_do_affect_matching(uri: str, change: dict[str, Any]) -> None:
    assert match_key("POST", uri, {**BODY, **change}) != match_key("POST", URI, BODY)


def test_the_method_affects_matching() -> None:
    assert match_key("GET", URI, BODY) != match_key("POST", URI, BODY)


def test_successive_identical_requests_replay_successive_recordings(tmp_path: Path) -> None:
    other = {**BODY, "temperature": 0.1}
    failed = Interaction("POST", URI, {}, BODY, 500, {}, completion("from a 500"))
    path = saved(
        tmp_path,
        interaction("a", "b", body={**BODY, "n": 2}),
        interaction("other", body=other),
        failed,
        interaction("c"),
        interaction("d"),
    )
    cassette = RowCassette.load(path)
    assert contents_of(cassette.recorded_choices(match_key("POST", URI, BODY))) == ["a", "b", "c", "d"]
    assert contents_of(cassette.recorded_choices(match_key("POST", URI, other))) == ["other"]
    assert cassette.recorded_choices(match_key("POST", URI, {**BODY, "max_tokens": 1})) == []


def test_nearest_shows_the_most_similar_recorded_request_as_a_diff(tmp_path: Path) -> None:
    far = {**BODY, "model": "m2", "messages": [{"role": "user", "content": "something else entirely"}]}
    cassette = RowCassette(tmp_path / "c.yaml", [interaction("x", body=far), interaction("y", body=BODY)])
    diff = cassette.nearest(URI, {**BODY, "temperature": 0.9, "n": 3})
    assert diff is not None
    assert '- "temperature": 0.7,' in diff and '+ "temperature": 0.9,' in diff
    assert "m2" not in diff and '"n"' not in diff
    assert diff.startswith("--- recorded\n+++ requested")


def test_nearest_shows_a_different_endpoint(tmp_path: Path) -> None:
    cassette = RowCassette(tmp_path / "c.yaml", [interaction("x")])
    diff = cassette.nearest("http://h/inference/v1/completions", BODY)
    assert diff is not None
    assert "-endpoint: /chat/completions" in diff and "+endpoint: /completions" in diff


@pytest.mark.parametrize(
    ("uri", "endpoint", "base"),
    [
        (URI, "/chat/completions", "http://127.0.0.1:4010/v1"),
        (
            "https://api.fireworks.ai/inference/v1/chat/completions/",
            "/chat/completions",
            "https://api.fireworks.ai/inference/v1",
        ),
        ("http://h/openai/v1/completions?key=x", "/completions", "http://h/openai/v1"),
        ("http://h/custom/path", "/custom/path", "http://h"),
    ],
)
def test_endpoint_path_and_base_url_split_a_request_url(uri: str, endpoint: str, base: str) -> None:
    assert endpoint_path(uri) == endpoint
    assert base_url_of(uri) == base


def test_base_urls_lists_where_a_cassette_was_recorded(tmp_path: Path) -> None:
    cassette = RowCassette(
        tmp_path / "c.yaml",
        [interaction("a"), interaction("b", uri="http://other:1/inference/v1/chat/completions"), interaction("c")],
    )
    assert cassette.base_urls() == ["http://127.0.0.1:4010/v1", "http://other:1/inference/v1"]


def test_nearest_of_an_empty_cassette_is_none(tmp_path: Path) -> None:
    assert RowCassette(tmp_path / "c.yaml").nearest(URI, BODY) is None


# -- secrets --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Authorization", "authorization", "X-Api-Key", "api-key", "Cookie", "Set-Cookie", "Proxy-Authorization"]
)
def test_secret_headers_are_dropped(name: str) -> None:
    kept = scrub_headers({name: "anything", "Content-Type": "application/json"}, [SECRET])
    assert kept == {"Content-Type": "application/json"}


def test_any_header_carrying_the_key_is_dropped_and_transport_noise_too() -> None:
    headers = {"X-Echo": f"key={SECRET}", "Date": "Mon", "Server": "x", "Content-Length": "3", "X-Request-Id": "r1"}
    assert scrub_headers(headers, [SECRET]) == {"X-Request-Id": "r1"}


@pytest.mark.parametrize("key", ["key", "api_key", "API-KEY", "apikey", "access_token", "token"])
def test_key_query_parameters_are_redacted(key: str) -> None:
    scrubbed = scrub_uri(f"https://api.example.com/v1/chat/completions?{key}={SECRET}&model=x")
    assert SECRET not in scrubbed
    assert scrubbed.startswith("https://api.example.com/v1/chat/completions?")
    assert f"{key}=%3Credacted%3E" in scrubbed and "model=x" in scrubbed
    assert REDACTED == "<redacted>"


def test_a_uri_without_query_is_unchanged() -> None:
    assert scrub_uri(URI) == URI


def test_a_cassette_of_scrubbed_exchanges_holds_no_secret(tmp_path: Path) -> None:
    request_headers = {"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET, "Content-Type": "application/json"}
    response_headers = {"Set-Cookie": f"session={SECRET}", "Content-Type": "application/json"}
    clean = Interaction(
        "POST",
        scrub_uri(f"{URI}?key={SECRET}"),
        scrub_headers(request_headers, [SECRET]),
        BODY,
        200,
        scrub_headers(response_headers, [SECRET]),
        completion("4"),
    )
    path = saved(tmp_path, clean)
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text and "Authorization" not in text and "Cookie" not in text
    assert "key=%3Credacted%3E" in text


@pytest.mark.parametrize("where", ["response body", "request body", "header"])
def test_save_refuses_a_cassette_that_still_holds_the_key(tmp_path: Path, where: str) -> None:
    path = tmp_path / "row.yaml"
    RowCassette(path, [interaction("previous")]).save([SECRET])
    before = path.read_bytes()
    leaky = interaction("fine")
    if where == "response body":
        leaky.response_body = completion(f"your key is {SECRET}")
    elif where == "request body":
        leaky.request_body = {**BODY, "user": SECRET}
    else:
        leaky.response_headers = {"X-Echo": SECRET}
    cassette = RowCassette.load(path)
    cassette.append(leaky)
    with pytest.raises(SecretLeak, match=rf"^{path}: refused to save: the cassette would contain the API key"):
        cassette.save([SECRET])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["row.yaml"]


def test_save_refuses_a_new_cassette_with_the_key_and_writes_no_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "row.yaml"
    with pytest.raises(SecretLeak):
        RowCassette(path, [interaction(SECRET)]).save([SECRET])
    assert not path.exists()

"""The local fake chat-completions server: protocol, table, n, faults, auth, validation, lifecycle, speed, CLI."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pytest_rewardkit.testing import FakeChatServer, Fault, read_table

# Requests to 127.0.0.1 must never go through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **extra}


def post(base_url: str, body: Any, headers: dict[str, str] | None = None, path: str = "/chat/completions") -> Any:
    """(status, headers, parsed JSON body) of one synchronous POST."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def contents(payload: dict[str, Any]) -> list[str]:
    return [choice["message"]["content"] for choice in payload["choices"]]


def assert_openai_error(payload: dict[str, Any]) -> None:
    assert set(payload) == {"error"}
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    assert isinstance(payload["error"]["type"], str)
    assert "code" in payload["error"]


def test_response_has_the_openai_shape_and_the_request_is_recorded() -> None:
    server = FakeChatServer(table={"What is 2+2?": ["It is 4"]})
    with server.running() as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        body = {
            "model": "accounts/fireworks/models/qwen3-30b-a3b",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
            "temperature": 0.7,
        }
        status, headers, payload = post(base_url, body, headers={"Authorization": "Bearer k"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert payload["object"] == "chat.completion"
    assert payload["id"].startswith("chatcmpl-") and isinstance(payload["created"], int)
    assert payload["model"] == "accounts/fireworks/models/qwen3-30b-a3b"
    assert payload["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "It is 4"}, "finish_reason": "stop"}
    ]
    assert payload["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    [received] = server.requests
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.headers["Authorization"] == "Bearer k"
    assert received.json == body


def test_fireworks_path_is_served_too() -> None:
    with FakeChatServer().running() as base_url:
        root = base_url.removesuffix("/v1")
        status, _, payload = post(root, chat("x"), path="/inference/v1/chat/completions")
    assert status == 200 and contents(payload) == ["echo: x"]


def test_identical_exchanges_get_identical_ids_across_servers() -> None:
    # Recordings of the same run must not differ in volatile-looking fields.
    payloads = []
    for _ in range(2):
        with FakeChatServer(table={"q": ["a", "b"]}).running() as base_url:
            payloads.append([post(base_url, chat("q"))[2] for _ in range(2)])
    assert payloads[0] == payloads[1]
    assert payloads[0][0]["id"] != payloads[0][1]["id"]


def test_table_cycles_per_key_and_unknown_keys_are_echoed() -> None:
    server = FakeChatServer(table={"a": ["a1", "a2", "a3"], "b": ["b1"]})
    with server.running() as base_url:
        answers = [contents(post(base_url, chat(key))[2])[0] for key in ["a", "b", "a", "a", "b", "a", "zzz"]]
    assert answers == ["a1", "b1", "a2", "a3", "b1", "a1", "echo: zzz"]


def test_the_key_is_the_last_user_message() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}]},
        {"role": "tool", "content": "tool output", "tool_call_id": "c1"},
    ]
    with FakeChatServer(table={"second": ["found"], "first": ["wrong"]}).running() as base_url:
        _, _, payload = post(base_url, {"model": "m", "messages": messages})
    assert contents(payload) == ["found"]


def test_a_callable_table_receives_the_request() -> None:
    seen: list[dict[str, Any]] = []

    def table(request: dict[str, Any]) -> list[str]:
        seen.append(request)
        return [f"{request['model']} says {request['messages'][-1]['content']}"]

    with FakeChatServer(table=table).running() as base_url:
        _, _, payload = post(base_url, chat("hello"))
    assert contents(payload) == ["fake-model says hello"]
    assert seen == [chat("hello")]


def test_tool_call_entries_come_back_as_assistant_messages_with_finish_reason_tool_calls() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'}}
    with FakeChatServer(table={"add": [{"tool_calls": [call]}, "4"]}).running() as base_url:
        _, _, payload = post(base_url, chat("add", tools=[{"type": "function", "function": {"name": "add"}}], n=2))
    first, second = payload["choices"]
    assert first == {
        "index": 0,
        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
        "finish_reason": "tool_calls",
    }
    assert second["finish_reason"] == "stop" and second["message"]["content"] == "4"


def test_n_is_honoured_with_successive_entries() -> None:
    with FakeChatServer(table={"q": ["r0", "r1", "r2", "r3", "r4"]}).running() as base_url:
        _, _, first = post(base_url, chat("q", n=3))
        _, _, second = post(base_url, chat("q", n=3))
    assert [choice["index"] for choice in first["choices"]] == [0, 1, 2]
    assert contents(first) == ["r0", "r1", "r2"]
    assert contents(second) == ["r3", "r4", "r0"]
    assert [choice["index"] for choice in second["choices"]] == [0, 1, 2]


def test_n_is_ignored_when_not_honoured() -> None:
    with FakeChatServer(table={"q": ["r0", "r1"]}, honour_n=False).running() as base_url:
        answers = [post(base_url, chat("q", n=4))[2] for _ in range(3)]
    assert [contents(payload) for payload in answers] == [["r0"], ["r1"], ["r0"]]
    assert all(payload["choices"][0]["index"] == 0 for payload in answers)


def test_reset_forgets_requests_faults_and_table_positions() -> None:
    server = FakeChatServer(table={"q": ["r0", "r1"]})
    with server.running() as base_url:
        post(base_url, chat("q"))
        server.script(Fault.status(500))
        server.reset()
        status, _, payload = post(base_url, chat("q"))
    assert status == 200 and contents(payload) == ["r0"]
    assert len(server.requests) == 1


def test_an_empty_candidate_list_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match=r"no responses for \['q'\]"):
        FakeChatServer(table={"q": []})


# -- faults (async, through aiohttp's client) ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_faults_are_consumed_in_order_one_per_request() -> None:
    server = FakeChatServer()
    server.script(Fault.status(500), Fault.status(401), Fault.status(503))
    async with server as base_url, aiohttp.ClientSession() as session:
        statuses, payloads = [], []
        for _ in range(4):
            async with session.post(base_url + "/chat/completions", json=chat()) as response:
                statuses.append(response.status)
                payloads.append(await response.json())
    assert statuses == [500, 401, 503, 200]
    for payload in payloads[:3]:
        assert_openai_error(payload)
    assert contents(payloads[3]) == ["echo: hi"]


@pytest.mark.asyncio
async def test_status_fault_has_an_openai_error_body_and_retry_after() -> None:
    server = FakeChatServer()
    server.script(Fault.status(429, retry_after=1), Fault.status(500))
    async with server as base_url, aiohttp.ClientSession() as session:
        async with session.post(base_url + "/chat/completions", json=chat()) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "1"
            payload = await response.json()
            assert_openai_error(payload)
            assert payload["error"]["type"] == "rate_limit_error"
        async with session.post(base_url + "/chat/completions", json=chat()) as response:
            assert response.status == 500 and "Retry-After" not in response.headers
            assert (await response.json())["error"]["type"] == "server_error"


@pytest.mark.asyncio
async def test_gzip_mode_compresses_answers_and_errors_for_clients_that_accept_gzip() -> None:
    server = FakeChatServer(table={"hi": ["hello"]}, gzip=True)
    server.script(Fault.status(503))
    async with server as base_url, aiohttp.ClientSession(auto_decompress=False) as session:
        for status in (503, 200):
            async with session.post(
                base_url + "/chat/completions", json=chat(), headers={"Accept-Encoding": "gzip, deflate"}
            ) as response:
                assert response.status == status and response.headers["Content-Encoding"] == "gzip"
                raw = await response.read()
                assert raw[:2] == b"\x1f\x8b" and int(response.headers["Content-Length"]) == len(raw)
                payload = json.loads(gzip.decompress(raw))
                assert "error" in payload if status == 503 else contents(payload) == ["hello"]
        # A client that does not accept gzip gets plain JSON, as from a real server.
        async with session.post(
            base_url + "/chat/completions", json=chat(), headers={"Accept-Encoding": "identity"}
        ) as r:
            assert "Content-Encoding" not in r.headers and contents(json.loads(await r.read())) == ["hello"]


def test_gzip_mode_from_the_command_line() -> None:
    command = [sys.executable, "-m", "pytest_rewardkit.testing", "--gzip"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            request = urllib.request.Request(
                base_url + "/chat/completions",
                data=json.dumps(chat("q")).encode(),
                headers={"Content-Type": "application/json", "Accept-Encoding": "gzip"},
            )
            with _OPENER.open(request, timeout=10) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                assert contents(json.loads(gzip.decompress(response.read()))) == ["echo: q"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()


@pytest.mark.asyncio
async def test_status_fault_with_a_custom_body() -> None:
    server = FakeChatServer()
    server.script(Fault.status(400, body={"detail": "custom"}), Fault.status(502, body="Bad gateway"))
    async with server as base_url, aiohttp.ClientSession() as session:
        async with session.post(base_url + "/chat/completions", json=chat()) as response:
            assert response.status == 400 and await response.json() == {"detail": "custom"}
        async with session.post(base_url + "/chat/completions", json=chat()) as response:
            assert response.status == 502 and await response.text() == "Bad gateway"


@pytest.mark.asyncio
async def test_timeout_fault_trips_a_client_read_timeout_then_the_server_answers_again() -> None:
    server = FakeChatServer()
    server.script(Fault.timeout(5.0))
    async with server as base_url, aiohttp.ClientSession() as session:
        with pytest.raises(asyncio.TimeoutError):
            timeout = aiohttp.ClientTimeout(sock_read=0.2)
            async with session.post(base_url + "/chat/completions", json=chat(), timeout=timeout) as response:
                await response.read()
        async with session.post(base_url + "/chat/completions", json=chat("again")) as response:
            assert contents(await response.json()) == ["echo: again"]


@pytest.mark.asyncio
async def test_timeout_fault_answers_normally_after_the_delay() -> None:
    server = FakeChatServer()
    server.script(Fault.timeout(0.2))
    async with server as base_url, aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(base_url + "/chat/completions", json=chat()) as response:
            assert response.status == 200 and contents(await response.json()) == ["echo: hi"]
        assert time.perf_counter() - started >= 0.2


@pytest.mark.asyncio
async def test_garbage_fault_is_a_200_html_body() -> None:
    server = FakeChatServer()
    server.script(Fault.garbage(b"<html>oops"))
    async with (
        server as base_url,
        aiohttp.ClientSession() as session,
        session.post(base_url + "/chat/completions", json=chat()) as response,
    ):
        assert response.status == 200 and response.content_type == "text/html"
        assert await response.read() == b"<html>oops"
        with pytest.raises(aiohttp.ContentTypeError):
            await response.json()


@pytest.mark.asyncio
async def test_disconnect_fault_closes_the_connection_without_a_response() -> None:
    server = FakeChatServer()
    server.script(Fault.disconnect())
    async with server as base_url, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with session.post(base_url + "/chat/completions", json=chat()) as response:
                await response.read()
        async with session.post(base_url + "/chat/completions", json=chat()) as response:
            assert response.status == 200


@pytest.mark.asyncio
async def test_bad_json_shape_fault_is_json_without_choices() -> None:
    server = FakeChatServer()
    server.script(Fault.bad_json_shape())
    async with (
        server as base_url,
        aiohttp.ClientSession() as session,
        session.post(base_url + "/chat/completions", json=chat()) as response,
    ):
        payload = await response.json()
    assert response.status == 200 and isinstance(payload, dict) and "choices" not in payload


# -- auth and validation ------------------------------------------------------------------------------------------


def test_api_key_is_required_when_set() -> None:
    server = FakeChatServer(api_key="sk-test")
    with server.running() as base_url:
        missing = post(base_url, chat())
        wrong = post(base_url, chat(), headers={"Authorization": "Bearer nope"})
        right = post(base_url, chat(), headers={"Authorization": "Bearer sk-test"})
    for status, _, payload in (missing, wrong):
        assert status == 401
        assert_openai_error(payload)
        assert payload["error"]["code"] == "invalid_api_key"
    assert right[0] == 200 and contents(right[2]) == ["echo: hi"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        ([1, 2], None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages.0.role"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": "2"}, "n"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}, "stream"),
    ],
)
def test_bad_requests_get_a_400_openai_error(body: Any, param: str | None) -> None:
    with FakeChatServer().running() as base_url:
        status, _, payload = post(base_url, body)
    assert status == 400
    assert_openai_error(payload)
    assert payload["error"]["type"] == "invalid_request_error"
    if param is not None:
        assert payload["error"]["param"].startswith(param)


# -- lifecycle and speed ------------------------------------------------------------------------------------------


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/")[0])


def _port_is_free(port: int) -> bool:
    """Nothing listens there and a new server could bind it (SO_REUSEADDR, as servers do, tolerates TIME_WAIT)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def test_start_and_stop_repeatedly_leaks_no_threads_ports_or_descriptors() -> None:
    server = FakeChatServer()
    server.stop()  # stopping a server that is not running is harmless
    threads, descriptors = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        base_url = server.start_in_thread()
        with pytest.raises(RuntimeError, match="already running"):
            server.start_in_thread()
        assert post(base_url, chat())[0] == 200
        server.stop()
        port = _port(base_url)
        assert _port_is_free(port)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == descriptors
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_a_fixed_port_can_be_reused_after_stop() -> None:
    with FakeChatServer().running() as base_url:
        port = _port(base_url)
    for _ in range(2):
        with FakeChatServer(port=port).running() as again:
            assert again == base_url and post(again, chat())[0] == 200


def test_stop_does_not_wait_for_a_request_stuck_in_a_timeout_fault() -> None:
    server = FakeChatServer()
    server.script(Fault.timeout(30.0))
    base_url = server.start_in_thread()
    with socket.create_connection(("127.0.0.1", _port(base_url))) as client:
        body = json.dumps(chat()).encode()
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        while not server.requests:
            time.sleep(0.01)
        started = time.perf_counter()
        server.stop()
    assert time.perf_counter() - started < 2.0


@pytest.mark.asyncio
async def test_async_context_manager_serves_inside_the_running_loop() -> None:
    server = FakeChatServer(table={"q": ["a"]})
    async with server as base_url, aiohttp.ClientSession() as session:
        assert server.base_url == base_url
        async with session.post(base_url + "/chat/completions", json=chat("q")) as response:
            assert contents(await response.json()) == ["a"]
    with pytest.raises(RuntimeError):
        _ = server.base_url


@pytest.mark.asyncio
async def test_64_concurrent_requests_with_200ms_latency_take_one_latency() -> None:
    server = FakeChatServer(latency=0.2)

    async def one(session: aiohttp.ClientSession, base_url: str, index: int) -> str:
        async with session.post(base_url + "/chat/completions", json=chat(f"q{index}")) as response:
            return contents(await response.json())[0]

    async with server as base_url, aiohttp.ClientSession() as session:
        started = time.perf_counter()
        answers = await asyncio.gather(*(one(session, base_url, index) for index in range(64)))
        elapsed = time.perf_counter() - started
    assert answers == [f"echo: q{index}" for index in range(64)]
    assert 0.2 <= elapsed < 0.6


# -- command line -------------------------------------------------------------------------------------------------


def test_read_table_names_the_file_and_line_of_a_bad_row(tmp_path: Path) -> None:
    table = tmp_path / "table.jsonl"
    table.write_text('{"prompt": "a", "responses": ["x"]}\n\n{"prompt": "b", "responses": []}\n')
    with pytest.raises(ValueError, match=r"table\.jsonl:3: responses: .*at least 1"):
        read_table(table)
    table.write_text('{"prompt": "a", "responses": ["x"]}\n{"prompt": "a", "responses": ["y"]}\n')
    with pytest.raises(ValueError, match=r"table\.jsonl:2: prompt already given on line 1"):
        read_table(table)
    table.write_text("not json\n")
    with pytest.raises(ValueError, match=r"table\.jsonl:1: "):
        read_table(table)


def test_command_line_serves_a_table_until_sigterm(tmp_path: Path) -> None:
    table = tmp_path / "table.jsonl"
    rows = [{"prompt": "q", "responses": ["r0", {"content": "r1"}]}, {"prompt": "p", "responses": ["only"]}]
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = [sys.executable, "-m", "pytest_rewardkit.testing", "--table", str(table), "--latency", "0.01"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            assert contents(post(base_url, chat("q", n=2))[2]) == ["r0", "r1"]
            assert contents(post(base_url, chat("p"))[2]) == ["only"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()


def test_command_line_rejects_a_bad_table_with_its_location(tmp_path: Path) -> None:
    table = tmp_path / "table.jsonl"
    table.write_text('{"prompt": "a"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "pytest_rewardkit.testing", "--table", str(table)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{table}:1: responses: Field required" in result.stderr

"""Cassettes: one vcrpy-format YAML file per (suite, model, row), the cache, mock and record of
every model call.

Replay reads the file directly with libyaml's safe loader and answers from it: no HTTP stack,
no global patching, so many rows can hold different cassettes at the same time. Requests match on
method, endpoint path and normalized body, so a cassette replays under any base URL; bodies are
stored decoded, with headers that say so, so vcrpy itself replays them through any HTTP client. Recording
appends interactions and rewrites the file atomically when the row finishes; secrets are
scrubbed first and the serialized text is checked for the key before anything is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from pytest_rewardkit.errors import CassetteError
from pytest_rewardkit.files import write_atomically
from pytest_rewardkit.models import ResponseStats, content_text

if TYPE_CHECKING:
    from pytest_rewardkit.cassette_cache import CassetteCache

CASSETTE_VERSION = 1  # vcrpy's cassette format version

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie", "x-fireworks-key"}
)
SECRET_QUERY_KEYS = frozenset({"key", "api_key", "api-key", "apikey", "access_token", "token"})
# Transport headers that change on every call and say nothing about the exchange.
VOLATILE_HEADERS = frozenset({"date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"})
# Bodies are stored decoded, so the headers describing the bytes on the wire are rewritten on save to
# describe the stored body (as vcrpy's decode_compressed_response does): else vcrpy replaying through
# httpx, requests or aiohttp would try to gunzip plain JSON.
BODY_HEADERS = frozenset({"content-encoding", "content-length"})
# The OpenAI-compatible endpoints, most specific first. A request is identified by the endpoint it
# asks for, not by the prefix its base URL adds (/v1, Fireworks' /inference/v1, a proxy's /openai/v1).
ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/responses")
# Fields that change between otherwise identical requests and must not affect matching.
VOLATILE_BODY_FIELDS = frozenset({"n", "user", "metadata", "stream_options", "request_id"})
REDACTED = "<redacted>"


class SecretLeak(CassetteError):
    """Refused to write a cassette that would contain the API key."""


@dataclass
class Interaction:
    method: str
    uri: str
    request_headers: dict[str, str]
    request_body: dict[str, Any]
    status: int
    response_headers: dict[str, str]
    response_body: dict[str, Any]
    latency_s: float | None = None  # wall time of the exchange, measured when it was recorded

    def scrubbed(self, secrets: list[str]) -> Interaction:
        """This exchange with credentials (headers, key query parameters, the key anywhere in a
        header value) and volatile transport headers removed: what may be written to disk."""
        return dataclasses.replace(
            self,
            uri=scrub_uri(self.uri),
            request_headers=scrub_headers(self.request_headers, secrets),
            response_headers=scrub_headers(self.response_headers, secrets),
        )

    @functools.cached_property
    def key(self) -> str:
        # Asked for on every lookup in the cassette; the request never changes once recorded.
        return match_key(self.method, self.uri, self.request_body)

    @property
    def base_url(self) -> str:
        """The endpoint's base URL this exchange was recorded against (for messages, not matching)."""
        return base_url_of(self.uri)

    @property
    def choices(self) -> list[dict[str, Any]]:
        return [c for c in self.response_body.get("choices", []) if isinstance(c, dict)]

    def choice_stats(self) -> list[ResponseStats]:
        """Per choice: finish reason, latency and its share of the request's token usage."""
        choices = self.choices
        usage = self.response_body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        lengths = [len(content_text((c.get("message") or {}).get("content"))) + 1 for c in choices]
        prompts = _apportion(prompt, [1] * len(choices))
        completions = _apportion(completion, lengths)
        return [
            ResponseStats(
                prompt_tokens=p,
                completion_tokens=c,
                estimated=len(choices) > 1 and (p is not None or c is not None),
                finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
                latency_s=self.latency_s,
            )
            for choice, p, c in zip(choices, prompts, completions, strict=True)
        ]


def _apportion(total: Any, weights: list[int]) -> list[int | None]:
    """`total` split in proportion to `weights` as integers that sum to it (largest remainder)."""
    if not isinstance(total, int) or isinstance(total, bool) or not weights:
        return [None] * len(weights)
    scale = sum(weights)
    shares = [total * w / scale for w in weights]
    parts = [int(share) for share in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: parts[i] - shares[i])
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return list(parts)


def endpoint_path(uri: str) -> str:
    """The endpoint a URL asks for, e.g. `/chat/completions`, without the base URL's path prefix;
    a path that is no known endpoint is kept whole."""
    path = urlsplit(uri).path.rstrip("/")
    return next((endpoint for endpoint in ENDPOINTS if path.endswith(endpoint)), path)


def base_url_of(uri: str) -> str:
    """The base URL a request URL was built from: without its endpoint path and query."""
    parts = urlsplit(uri)
    path = parts.path.rstrip("/")
    return urlunsplit(parts._replace(path=path.removesuffix(endpoint_path(uri)), query="", fragment=""))


def match_key(method: str, uri: str, body: dict[str, Any]) -> str:
    """Requests are the same when method, endpoint path and the normalized body are: the base URL
    (host, port, path prefix), query, headers and volatile body fields (n, user, ...) do not count,
    so cassettes recorded against one server replay under any base URL."""
    stable = {k: v for k, v in body.items() if k not in VOLATILE_BODY_FIELDS}
    return f"{method.upper()} {endpoint_path(uri)} {json.dumps(stable, sort_keys=True)}"


def scrub_headers(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    clean = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in SECRET_HEADERS or lowered in VOLATILE_HEADERS or any(s and s in value for s in secrets):
            continue
        clean[name] = value
    return clean


def scrub_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    query = [(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _safe(part: str) -> str:
    """A path component: unsafe characters replaced, and a short hash keeping two names that
    differ only in those characters apart."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", part).strip(".") or "_"
    if cleaned != part:
        cleaned += "-" + hashlib.sha256(part.encode()).hexdigest()[:8]
    return cleaned


@functools.lru_cache(maxsize=64)
def cassette_dir(root: Path, suite: str, model_alias: str) -> Path:
    """`<root>/<suite>/<model alias>`: where a suite's cassettes for one model live. A suite
    labelled by its folder's path (`a/capitals`) keeps that path's folders."""
    return root.joinpath(*(_safe(part) for part in suite.split("/")), _safe(model_alias))


def cassette_path(root: Path, suite: str, model_alias: str, row_id: str) -> Path:
    """`<root>/<suite>/<model alias>/<row id>.yaml`."""
    return cassette_dir(root, suite, model_alias) / f"{_safe(row_id)}.yaml"


class _BlockDumper(yaml.CSafeDumper):
    """Multi-line strings as literal blocks, so a cassette reads well in a diff."""


def _represent_str(dumper: yaml.CSafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_BlockDumper.add_representer(str, _represent_str)


class _Malformed(Exception):
    """A parsed cassette's part that is not what vcrpy writes; `where` is its path in the YAML tree
    (keys and list indexes) and `json_line` the line inside it where its JSON broke."""

    def __init__(self, problem: str, where: tuple[str | int, ...], json_line: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.where, self.json_line = problem, where, json_line


def _as_json(text: Any, where: tuple[str | int, ...]) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    what = f"interaction {where[1]} {where[2]} body"
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError) as exc:
        raise _Malformed(f"{what} is not JSON: {exc}", where, getattr(exc, "lineno", None)) from exc
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is not a JSON object", where)
    return value


def broken_cassette(path: Path, problem: str, line: int, column: int | None = None) -> CassetteError:
    """The error for a cassette that cannot be read: where it broke, what broke, and how to get
    its recordings back. Nothing rewrites a cassette it could not read, so what it holds stays on disk."""
    at = f"{path}:{line}" + (f":{column}" if column is not None else "")
    return CassetteError(
        f"{at}: {problem}; restore it from git (git checkout -- {path}) or re-record it "
        "(delete the file, then run with --record-mode=new_episodes)"
    )


def _unreadable(path: Path, text: str, exc: yaml.YAMLError) -> CassetteError:
    """A cassette libyaml refused, located where the YAML broke (its problem mark)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = ", ".join(str(part) for part in (getattr(exc, "problem", None), getattr(exc, "context", None)) if part)
    problem = problem or str(exc).replace("\n", " ")
    problem = f"{'corrupt' if _closed(text) else 'truncated'} cassette (not valid YAML: {problem})"
    last = _last_line(text)
    if mark is None or mark.line + 1 > last:
        # libyaml marks the end of a file cut mid-line on the line after it.
        return broken_cassette(path, problem, last, len(text.rpartition("\n")[2]) + 1)
    return broken_cassette(path, problem, mark.line + 1, mark.column + 1)


def _undecodable(path: Path, exc: UnicodeDecodeError) -> CassetteError:
    """A cassette that is not UTF-8 (vcrpy writes UTF-8): cut inside a character when it ends there."""
    before = exc.object[: exc.start]
    line, column = before.count(b"\n") + 1, len(before.rpartition(b"\n")[2].decode("utf-8", "replace")) + 1
    kind = "truncated" if exc.end >= len(exc.object) and exc.reason == "unexpected end of data" else "corrupt"
    return broken_cassette(path, f"{kind} cassette (not UTF-8: {exc.reason})", line, column)


def _closed(text: str) -> bool:
    """Whether the file ends with vcrpy's closing `version:` line, which it writes last."""
    tail = text.rstrip().rpartition("\n")[2]
    return tail.startswith("version:")


def _last_line(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1) or 1


def _line_of(text: str, where: tuple[str | int, ...], json_line: int | None) -> int:
    """The file's line holding the part of the cassette at `where` (the line of the JSON error
    inside a block-scalar body). Composes the file again: only ever on the error path."""
    node = yaml.compose(text, Loader=yaml.CSafeLoader)
    if node is None:
        return 1
    for step in where:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [value for key, value in node.value if key.value == step]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            children = [node.value[step]]
        if not children:
            break
        node = children[0]
    line = node.start_mark.line + 1
    if json_line is not None and isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        # A block scalar's text starts on the line after its `|` indicator.
        line += json_line
    return line


def _first(values: Any) -> str:
    return str(values[0]) if isinstance(values, list) and values else str(values)


@dataclass
class RowCassette:
    path: Path
    interactions: list[Interaction] = field(default_factory=list)
    exists: bool = False

    @classmethod
    def load(cls, path: Path, cache: CassetteCache | None = None) -> RowCassette:
        """The cassette at `path` (an empty one when there is none); `cache` keeps its parsed YAML
        between runs, for replay."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise CassetteError(f"{path}: cannot read cassette: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise _undecodable(path, exc) from exc
        try:
            data = yaml.load(text, Loader=yaml.CSafeLoader) if cache is None else cache.parse(path, text)
        except yaml.YAMLError as exc:
            raise _unreadable(path, text, exc) from exc
        if data is None:
            raise broken_cassette(path, "truncated cassette (the file is empty)", 1)
        if isinstance(data, dict) and "interactions" in data and "version" not in data:
            # vcrpy writes it after every interaction: a file cut short at a line end (or inside a
            # block scalar) still parses, and its last interaction is then incomplete.
            raise broken_cassette(
                path, "truncated cassette (it ends before vcrpy's closing 'version: 1')", _last_line(text)
            )
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise broken_cassette(path, "not a vcrpy cassette (no 'interactions' list)", 1)
        interactions = []
        for number, item in enumerate(data["interactions"]):
            try:
                request, response = item["request"], item["response"]
                interactions.append(
                    Interaction(
                        method=str(request["method"]),
                        uri=str(request["uri"]),
                        request_headers={k: _first(v) for k, v in (request.get("headers") or {}).items()},
                        request_body=_as_json(request.get("body"), ("interactions", number, "request", "body")),
                        status=int(response["status"]["code"]),
                        response_headers={
                            k: _first(v)
                            for k, v in (response.get("headers") or {}).items()
                            if k.lower() not in BODY_HEADERS
                        },
                        response_body=_as_json(
                            (response.get("body") or {}).get("string"),
                            ("interactions", number, "response", "body", "string"),
                        ),
                        latency_s=float(response["latency_s"]) if response.get("latency_s") is not None else None,
                    )
                )
            except _Malformed as exc:
                line = _line_of(text, exc.where, exc.json_line)
                raise broken_cassette(path, f"corrupt cassette ({exc.problem})", line) from exc
            except (KeyError, TypeError, ValueError) as exc:
                line = _line_of(text, ("interactions", number), None)
                problem = f"corrupt cassette (interaction {number} is malformed: {type(exc).__name__}: {exc})"
                raise broken_cassette(path, problem, line) from exc
        return cls(path, interactions, exists=True)

    def recorded_choices(self, key: str) -> list[dict[str, Any]]:
        """Every recorded choice for requests equal to `key`, in recording order: successive
        identical requests replay successive recordings, never the same one twice."""
        return [c for i in self.interactions if i.status < 300 and i.key == key for c in i.choices]

    def base_urls(self) -> list[str]:
        """The base URLs this cassette's exchanges were recorded against, first seen first."""
        return list(dict.fromkeys(i.base_url for i in self.interactions))

    def recorded_stats(self, key: str) -> list[ResponseStats]:
        """What each of `recorded_choices(key)` cost, in the same order."""
        return [s for i in self.interactions if i.status < 300 and i.key == key for s in i.choice_stats()]

    def nearest(self, uri: str, body: dict[str, Any]) -> str | None:
        """A diff between a request and the most similar recorded one, for miss messages."""
        if not self.interactions:
            return None

        def lines(path_of: str, value: dict[str, Any]) -> list[str]:
            stable = {k: v for k, v in value.items() if k not in VOLATILE_BODY_FIELDS}
            body_lines = json.dumps(stable, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
            return [f"endpoint: {endpoint_path(path_of)}", *body_lines]

        wanted = lines(uri, body)
        best = max(
            self.interactions,
            key=lambda i: difflib.SequenceMatcher(None, wanted, lines(i.uri, i.request_body)).ratio(),
        )
        recorded = lines(best.uri, best.request_body)
        diff = difflib.unified_diff(recorded, wanted, "recorded", "requested", lineterm="", n=1)
        return "\n".join(list(diff)[:40])

    def append(self, interaction: Interaction) -> None:
        self.interactions.append(interaction)

    def dumps(self) -> str:
        def entry(i: Interaction) -> dict[str, Any]:
            response_body = json.dumps(i.response_body, indent=1, ensure_ascii=False)
            response_headers = {k: v for k, v in i.response_headers.items() if k.lower() not in BODY_HEADERS}
            response_headers["Content-Length"] = str(len(response_body.encode("utf-8")))
            return {
                "request": {
                    "method": i.method,
                    "uri": i.uri,
                    "body": json.dumps(i.request_body, indent=1, ensure_ascii=False),
                    "headers": {k: [v] for k, v in sorted(i.request_headers.items())},
                },
                "response": {
                    "status": {"code": i.status, "message": "OK" if i.status < 300 else "ERROR"},
                    "headers": {k: [v] for k, v in sorted(response_headers.items())},
                    "body": {"string": response_body},
                    # Replay has no latency of its own: the recorded one is kept beside the exchange.
                    **({"latency_s": i.latency_s} if i.latency_s is not None else {}),
                },
            }

        data = {"interactions": [entry(i) for i in self.interactions], "version": CASSETTE_VERSION}
        return yaml.dump(data, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=100)

    def save(self, secrets: list[str]) -> None:
        """Write atomically; refuse (and write nothing) if a secret survived scrubbing."""
        text = self.dumps()
        leaked = [s for s in secrets if s and len(s) >= 6 and s in text]
        if leaked:
            raise SecretLeak(
                f"{self.path}: refused to save: the cassette would contain the API key; "
                "nothing was written (report this: a response echoed the key)"
            )
        write_atomically(self.path, text)
        self.exists = True

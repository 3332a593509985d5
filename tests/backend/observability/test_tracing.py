"""OpenTelemetry traces of chat requests: off by default, one span per stage when on.

Spans are checked in an in-memory exporter, and once as OTLP/HTTP protobuf received by
a tiny collector stand-in on loopback (the real exporter, the real wire format).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import Receive, Scope, Send

from backend.observability.tracing import TracingMiddleware, setup_tracing, shutdown_tracing, use_processor
from backend.settings import Settings
from tests.conftest import TEST_GATE
from tests.fakes.openai_server import FakeOpenAI, Reply

STAGES = ["expertgate.route", "expertgate.admit", "expertgate.retrieve", "expertgate.generate", "expertgate.record"]
QUESTION = {"role": "user", "content": "what does the liability cap clause in our master services agreement say?"}


@pytest.fixture
def exporter(settings: Settings) -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = use_processor(settings, SimpleSpanProcessor(memory))
    yield memory
    shutdown_tracing(provider)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("EXPERTGATE_OTEL_ENDPOINT", raising=False)
    assert setup_tracing(Settings()) is None
    # The standard OpenTelemetry variable turns it on as well as ours.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert Settings().otel_endpoint == "http://collector:4318"


async def test_a_chat_request_is_one_trace_with_a_span_per_stage(
    client: httpx.AsyncClient, llm: FakeOpenAI, exporter: InMemorySpanExporter
) -> None:
    llm.script(Reply("Section 9 caps liability at twelve months of fees.", prompt_tokens=21))
    r = await client.post("/v1/chat/completions", json={"model": "auto", "messages": [QUESTION]})
    assert r.status_code == 200, r.text
    request_id = r.json()["expertgate"]["request_id"]

    spans = by_name(exporter.get_finished_spans())
    root = spans["POST /v1/chat/completions"]
    assert set(STAGES) <= set(spans)
    for name in STAGES:
        span = spans[name]
        assert span.context.trace_id == root.context.trace_id, name
        assert span.parent is not None and span.parent.span_id == root.context.span_id, name
        assert span.attributes["expertgate.request_id"] == request_id, name
        assert span.attributes["expertgate.stage"] == name.removeprefix("expertgate.")
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["expertgate.request_id"] == r.headers["x-request-id"]

    route = spans["expertgate.route"].attributes
    assert route["expertgate.expert"] == "legal" and route["expertgate.router_version"] == TEST_GATE
    assert 0.0 <= route["expertgate.confidence"] <= 1.0
    generate = spans["expertgate.generate"].attributes
    assert generate["expertgate.expert"] == "legal"
    assert generate["gen_ai.usage.input_tokens"] == 21 and generate["gen_ai.usage.output_tokens"] == 9
    assert (
        spans["expertgate.record"].attributes["expertgate.conversation_id"] == r.json()["expertgate"]["conversation_id"]
    )
    # The stages ran one after the other, inside the request.
    starts = [spans[name].start_time for name in STAGES]
    assert starts == sorted(starts) and root.start_time <= starts[0] and spans[STAGES[-1]].end_time <= root.end_time


async def test_a_streamed_answer_has_its_generate_span_end_with_the_stream(
    client: httpx.AsyncClient, llm: FakeOpenAI, exporter: InMemorySpanExporter
) -> None:
    llm.script(Reply("one two three"))
    r = await client.post(
        "/v1/chat/completions", json={"model": "code", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    spans = by_name(exporter.get_finished_spans())
    generate = spans["expertgate.generate"]
    assert generate.attributes["expertgate.expert"] == "code"
    assert generate.attributes["gen_ai.usage.output_tokens"] == 3
    assert generate.context.trace_id == spans["POST /v1/chat/completions"].context.trace_id
    assert spans["expertgate.record"].start_time >= generate.start_time


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


async def test_spans_reach_an_otlp_http_collector_as_protobuf(
    client: httpx.AsyncClient, llm: FakeOpenAI, settings: Settings
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received = []
    provider = setup_tracing(settings.model_copy(update={"otel_endpoint": f"http://127.0.0.1:{server.server_port}"}))
    assert provider is not None
    try:
        r = await client.post("/v1/chat/completions", json={"model": "legal", "messages": [QUESTION]})
        assert r.status_code == 200
    finally:
        shutdown_tracing(provider)  # flushes the batch
        server.shutdown()
    assert _Collector.received, "the exporter posted nothing"
    names, request_ids = set(), set()
    for path, content_type, body in _Collector.received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            assert service == "expertgate"
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    names.add(span.name)
                    request_ids |= {a.value.string_value for a in span.attributes if a.key == "expertgate.request_id"}
    assert set(STAGES) | {"POST /v1/chat/completions"} <= names
    assert r.json()["expertgate"]["request_id"] in request_ids


async def test_a_callers_traceparent_is_continued_and_sent_on_to_the_llm(
    client: httpx.AsyncClient, llm: FakeOpenAI, exporter: InMemorySpanExporter
) -> None:
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "legal", "messages": [QUESTION]},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "vendor=abc"},
    )
    assert r.status_code == 200, r.text
    spans = by_name(exporter.get_finished_spans())
    root, generate = spans["POST /v1/chat/completions"], spans["expertgate.generate"]
    assert f"{root.context.trace_id:032x}" == trace_id
    assert root.parent is not None and f"{root.parent.span_id:016x}" == caller_span and root.parent.is_remote
    # The LLM endpoint gets the same trace, with the generate stage as the parent of its
    # work; the caller's tracestate is not passed on.
    sent = llm.headers[-1]
    assert sent["traceparent"] == f"00-{trace_id}-{generate.context.span_id:016x}-01"
    assert "tracestate" not in sent


async def test_a_caller_cannot_switch_tracing_off(
    client: httpx.AsyncClient, llm: FakeOpenAI, exporter: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-00"}  # flags 00: "not sampled"
    r = await client.post("/v1/chat/completions", json={"model": "legal", "messages": [QUESTION]}, headers=headers)
    assert r.status_code == 200, r.text
    spans = by_name(exporter.get_finished_spans())
    assert set(STAGES) - {"expertgate.retrieve"} <= set(spans)  # recorded all the same
    assert f"{spans['POST /v1/chat/completions'].context.trace_id:032x}" == trace_id


async def test_continuing_callers_traces_can_be_turned_off(exporter: InMemorySpanExporter) -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    for continue_traces, continued in ((True, True), (False, False)):
        exporter.clear()
        app = TracingMiddleware(ok, continue_traces=continue_traces)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            assert (await http.get("/v1/models", headers=headers)).status_code == 200
        [root] = exporter.get_finished_spans()
        assert (f"{root.context.trace_id:032x}" == trace_id) is continued
        assert (root.parent is not None) is continued


async def test_a_malformed_traceparent_starts_a_new_trace(
    client: httpx.AsyncClient, llm: FakeOpenAI, exporter: InMemorySpanExporter
) -> None:
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "legal", "messages": [QUESTION]},
        headers={"traceparent": "00-not-a-trace-01"},
    )
    assert r.status_code == 200, r.text
    root = by_name(exporter.get_finished_spans())["POST /v1/chat/completions"]
    assert root.parent is None
    assert llm.headers[-1]["traceparent"].split("-")[1] == f"{root.context.trace_id:032x}"


async def test_nothing_is_sent_to_the_llm_when_tracing_is_off(client: httpx.AsyncClient, llm: FakeOpenAI) -> None:
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    r = await client.post("/v1/chat/completions", json={"model": "legal", "messages": [QUESTION]}, headers=headers)
    assert r.status_code == 200, r.text
    assert "traceparent" not in llm.headers[-1]


def test_trace_context_goes_to_self_hosted_endpoints_only() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from experts.llm import LiteLLMClient
    from experts.registry import GenerationParams
    from experts.types import ChatMessage, Endpoint

    client, messages, params = LiteLLMClient(), [ChatMessage("user", "hi")], GenerationParams()
    vllm = Endpoint(model="hosted_vllm/moe", api_base="http://vllm:8000/v1", api_key=None, timeout_s=30)
    hosted = Endpoint(model="openai/gpt-4o-mini", api_base=None, api_key="sk-x", timeout_s=30)
    with TracerProvider().get_tracer("test").start_as_current_span("generate") as span:
        parent = f"{span.get_span_context().span_id:016x}"
        assert client._kwargs(vllm, messages, params)["extra_headers"]["traceparent"].split("-")[2] == parent
        assert "extra_headers" not in client._kwargs(hosted, messages, params)
    assert "extra_headers" not in client._kwargs(vllm, messages, params)  # no span: nothing

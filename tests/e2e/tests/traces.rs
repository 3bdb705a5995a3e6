//! OpenTelemetry traces (issue 14): the spans of one `tools/call` reach a real OTLP receiver
//! in this test — a gRPC server implementing the collector's `TraceService`, or an HTTP
//! endpoint decoding `ExportTraceServiceRequest` — as one trace from the gateway through
//! the relay and the agent to the upstream, which reports the `_meta.traceparent` it got
//! (the fixture's `meta` tool).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpr_e2e::harness::{Cluster, RawMcp, Router, wait_for};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};

/// A span as received, with the `service.name` of the process that sent it.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }
    fn attr(&self, key: &str) -> Option<String> {
        let value = self
            .span
            .attributes
            .iter()
            .find(|kv| kv.key == key)?
            .value
            .as_ref()?
            .value
            .as_ref()?;
        Some(match value {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::IntValue(i) => i.to_string(),
            any_value::Value::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a receiver has been sent, in arrival order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Got>>>);

impl Received {
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut got = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    got.push(Got {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
    }

    fn all(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until the spans of trace `trace_id` include one of each `(service, kind,
    /// name)`, and returns them in that order.
    async fn wait_trace(&self, trace_id: &str, wanted: &[(&str, SpanKind, &str)]) -> Vec<Got> {
        let what = format!("spans {wanted:?} of trace {trace_id}");
        wait_for(&what, Duration::from_secs(15), || {
            let spans = self.all();
            async move {
                wanted
                    .iter()
                    .map(|(service, kind, name)| {
                        spans
                            .iter()
                            .find(|s| {
                                s.trace_id() == trace_id
                                    && s.service == *service
                                    && s.kind() == *kind
                                    && s.span.name == *name
                            })
                            .cloned()
                    })
                    .collect::<Option<Vec<Got>>>()
            }
        })
        .await
    }
}

/// The collector's gRPC TraceService.
struct Collector(Received);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts an OTLP/gRPC receiver on a free loopback port; returns its URL.
async fn grpc_receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = TraceServiceServer::new(Collector(received.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (url, received)
}

/// Starts an OTLP/HTTP receiver (`POST /v1/traces`, protobuf); returns its base URL.
async fn http_receiver() -> (String, Received) {
    use prost::Message as _;
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                use axum::response::IntoResponse as _;
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST.into_response();
                };
                sink.take(request);
                let answer = ExportTraceServiceResponse {
                    partial_success: None,
                };
                (
                    [("content-type", "application/x-protobuf")],
                    answer.encode_to_vec(),
                )
                    .into_response()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// `00-TRACE-SPAN-FLAGS` split into (trace id, span id, flags).
fn traceparent_parts(traceparent: &str) -> (String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {traceparent:?}");
    assert_eq!(parts[0], "00");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// Calls the fixture's `meta` tool; returns the `_meta` the upstream received.
async fn upstream_meta(mcp: &mut RawMcp) -> Value {
    let result = mcp.call("meta", json!({})).await.expect("meta answers");
    let text = result["content"][0]["text"].as_str().expect("text content");
    serde_json::from_str(text).expect("the fixture answers JSON")
}

/// Tracing variables: export to `endpoint` over `protocol`, batches every 100 ms.
fn otel_env<'a>(endpoint: &'a str, protocol: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", ""),
        ("OTEL_RESOURCE_ATTRIBUTES", ""),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
    ]
}

const GATEWAY: &str = "mcpr-edge-gateway";
const AGENT: &str = "mcpr-node-agent";

/// `mcpr up` with tracing `env`, serving the fixture `traced` (`--meta`), and an initialized
/// session on its transparent view.
async fn traced_router(env: &[(&str, &str)]) -> (Router, RawMcp) {
    let router = Router::start_with(&[], env).await;
    router.api().add_fixture("traced", &["--meta"]).await;
    router.api().wait_state("traced", "running").await;
    let url = router.mcp_url("/mcp/p/traced");
    let mut mcp = match env.iter().find(|(k, _)| *k == "MCP_API_KEY") {
        Some((_, key)) => RawMcp::with_key(&url, key),
        None => RawMcp::new(&url),
    };
    mcp.initialize().await;
    (router, mcp)
}

/// The three binaries with tracing `env`, serving the fixture `traced` (`--meta`); the
/// transparent view's URL and an initialized session on it.
async fn traced_cluster(env: &[(&str, &str)]) -> (Cluster, String, RawMcp) {
    let cluster = Cluster::start_with_env(1, None, env).await;
    let api = cluster.api();
    api.add_fixture("traced", &["--meta"]).await;
    api.wait_state("traced", "running").await;
    let url = cluster.mcp_url(0, "/mcp/p/traced");
    let mcp = wait_for(
        "the gateway to serve traced",
        Duration::from_secs(15),
        || {
            let url = url.clone();
            async move {
                let mut mcp = RawMcp::new(&url);
                mcp.initialize().await;
                mcp.request("tools/list", json!({}))
                    .await
                    .get("result")
                    .is_some()
                    .then_some(mcp)
            }
        },
    )
    .await;
    (cluster, url, mcp)
}

// Multi-threaded: the receivers run on the test's runtime, and must answer while the test
// blocks in `terminate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_gateway_through_the_agent_to_the_upstream() {
    let (endpoint, received) = grpc_receiver().await;
    let env = otel_env(&endpoint, "grpc");
    // Held to the end: dropping it stops the binaries.
    let (_cluster, url, mut mcp) = traced_cluster(&env).await;

    // A call of the client's own: the upstream gets the agent's span as its parent.
    let meta = upstream_meta(&mut mcp).await;
    let traceparent = meta["traceparent"]
        .as_str()
        .expect("_meta.traceparent upstream");
    let (trace_id, upstream_parent, flags) = traceparent_parts(traceparent);
    assert_eq!(flags, "01", "sampled");
    let spans = received
        .wait_trace(
            &trace_id,
            &[
                (GATEWAY, SpanKind::Server, "tools/call meta"),
                (GATEWAY, SpanKind::Client, "tools/call meta"),
                (AGENT, SpanKind::Server, "tools/call meta"),
                (AGENT, SpanKind::Client, "tools/call meta"),
            ],
        )
        .await;
    let [gateway, relay, agent, upstream] = &spans[..] else {
        unreachable!()
    };
    // The parent links: client → gateway → relay → agent → upstream request → upstream.
    assert_eq!(
        gateway.parent_id(),
        "",
        "the gateway's span starts the trace"
    );
    assert_eq!(relay.parent_id(), gateway.span_id());
    assert_eq!(agent.parent_id(), relay.span_id());
    assert_eq!(upstream.parent_id(), agent.span_id());
    assert_eq!(upstream_parent, upstream.span_id());
    // The semantic conventions' attributes, and the router's own.
    for span in &spans {
        assert_eq!(span.attr("mcp.method.name").as_deref(), Some("tools/call"));
        assert_eq!(span.attr("gen_ai.tool.name").as_deref(), Some("meta"));
        assert_eq!(
            span.attr("gen_ai.operation.name").as_deref(),
            Some("execute_tool")
        );
        assert!(span.attr("jsonrpc.request.id").is_some(), "{span:?}");
        assert_eq!(span.attr("error.type"), None);
    }
    assert_eq!(
        gateway.attr("mcp.session.id").as_deref(),
        mcp.session.as_deref()
    );
    assert_eq!(
        gateway.attr("mcp.protocol.version").as_deref(),
        Some("2025-06-18")
    );
    assert_eq!(gateway.attr("network.transport").as_deref(), Some("tcp"));
    assert_eq!(gateway.attr("mcpr.view").as_deref(), Some("transparent"));
    assert_eq!(gateway.attr("mcpr.provider").as_deref(), Some("traced"));
    assert!(gateway.attr("mcpr.agent").is_some());
    assert_eq!(relay.attr("mcpr.provider").as_deref(), Some("traced"));
    assert_eq!(agent.attr("mcpr.agent").as_deref(), Some("agent-0"));
    assert_eq!(agent.attr("mcpr.provider").as_deref(), Some("traced"));
    assert_eq!(upstream.attr("network.transport").as_deref(), Some("pipe"));

    // A client's `traceparent` header is the parent of the gateway's span.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let meta = meta_with_traceparent(
        &url,
        &mcp.session.clone().unwrap(),
        &format!("00-{client_trace}-{client_span}-01"),
    )
    .await;
    let (upstream_trace, _, _) = traceparent_parts(meta["traceparent"].as_str().unwrap());
    assert_eq!(
        upstream_trace, client_trace,
        "the client's trace goes on upstream"
    );
    let spans = received
        .wait_trace(
            client_trace,
            &[(GATEWAY, SpanKind::Server, "tools/call meta")],
        )
        .await;
    assert_eq!(spans[0].parent_id(), client_span);

    // The same for a stateless (2026-07-28) request: no session, the header is the parent.
    let modern_trace = "5a1c0d2e3f4b5a6978879695a4b3c2d1";
    let modern_span = "1122334455667788";
    let response = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "meta")
        .header("traceparent", format!("00-{modern_trace}-{modern_span}-01"))
        .body(
            json!({"jsonrpc": "2.0", "id": 101, "method": "tools/call",
                "params": {"name": "meta", "arguments": {}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    let answer: Value = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .map_or_else(|| serde_json::from_str(&body), serde_json::from_str)
        .unwrap_or_else(|e| panic!("a JSON-RPC answer ({e}): {body}"));
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text result: {answer}"));
    let meta: Value = serde_json::from_str(text).unwrap();
    let (upstream_trace, _, _) = traceparent_parts(meta["traceparent"].as_str().unwrap());
    assert_eq!(upstream_trace, modern_trace, "{meta}");
    let spans = received
        .wait_trace(
            modern_trace,
            &[(GATEWAY, SpanKind::Server, "tools/call meta")],
        )
        .await;
    assert_eq!(spans[0].parent_id(), modern_span);
    assert_eq!(
        spans[0].attr("mcp.protocol.version").as_deref(),
        Some("2026-07-28")
    );
    assert_eq!(spans[0].attr("network.transport").as_deref(), Some("tcp"));

    // ... and so is `params._meta.traceparent`, which the upstream gets replaced by the
    // agent's, beside the rest of `_meta`.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let meta_span = "b7ad6b7169203331";
    let answer = mcp
        .request(
            "tools/call",
            json!({"name": "meta", "arguments": {}, "_meta": {
                "traceparent": format!("00-{meta_trace}-{meta_span}-01"),
                "tracestate": "vendor=kept",
                "note": "also kept"}}),
        )
        .await;
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    let meta: Value = serde_json::from_str(text).unwrap();
    let (upstream_trace, upstream_parent, _) =
        traceparent_parts(meta["traceparent"].as_str().unwrap());
    assert_eq!(upstream_trace, meta_trace);
    assert_ne!(
        upstream_parent, meta_span,
        "the upstream's parent is the agent's span"
    );
    assert_eq!(meta["note"], "also kept", "{meta}");
    assert_eq!(meta["tracestate"], "vendor=kept", "{meta}");
    let spans = received
        .wait_trace(
            meta_trace,
            &[
                (GATEWAY, SpanKind::Server, "tools/call meta"),
                (AGENT, SpanKind::Client, "tools/call meta"),
            ],
        )
        .await;
    assert_eq!(spans[0].parent_id(), meta_span);
    assert_eq!(spans[1].span_id(), upstream_parent);

    // A tool's failure is an error of the span, though the protocol calls it a result.
    let failed = mcp
        .call("fail", json!({"message": "no"}))
        .await
        .expect("a tool error is a result");
    assert_eq!(failed["isError"], true);
    let failed_span = wait_for("the fail call's span", Duration::from_secs(15), || {
        let spans = received.all();
        async move {
            spans
                .into_iter()
                .find(|s| s.service == GATEWAY && s.span.name == "tools/call fail")
        }
    })
    .await;
    assert_eq!(
        failed_span.attr("error.type").as_deref(),
        Some("tool_error")
    );
    mcp.request("tools/call", json!({"name": "nope", "arguments": {}}))
        .await;
    let unknown = wait_for("the unknown tool's span", Duration::from_secs(15), || {
        let spans = received.all();
        async move {
            spans.into_iter().find(|s| {
                s.service == GATEWAY
                    && s.kind() == SpanKind::Server
                    && s.span.name == "tools/call nope"
            })
        }
    })
    .await;
    assert_eq!(unknown.attr("error.type").as_deref(), Some("-32602"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcpr_up_exports_over_http_protobuf_and_flushes_at_shutdown() {
    let (endpoint, received) = http_receiver().await;
    let mut env = otel_env(&endpoint, "http/protobuf");
    // No batch leaves on its own during the test: what arrives is the shutdown's flush.
    env.retain(|(k, _)| *k != "OTEL_BSP_SCHEDULE_DELAY");
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "600000"));
    env.push(("OTEL_SERVICE_NAME", "router-under-test"));
    // A caller with a key: the gateway's span names the key by its id.
    env.push(("MCP_API_KEY", "mcpr-traces-test-key-0123456789abcdef"));
    let (mut router, mut mcp) = traced_router(&env).await;
    let (status, keys) = router.api().get("/api/v1/keys").await;
    assert_eq!(status, 200, "{keys}");
    let key_id = keys
        .as_array()
        .or_else(|| keys["keys"].as_array())
        .and_then(|k| k.first())
        .and_then(|k| k["id"].as_str())
        .expect("the key of MCP_API_KEY")
        .to_owned();
    let meta = upstream_meta(&mut mcp).await;
    let (trace_id, upstream_parent, _) =
        traceparent_parts(meta["traceparent"].as_str().expect("_meta.traceparent"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(received.all().is_empty(), "nothing before the flush");
    router.proc.terminate().expect("mcpr up stops on SIGTERM");
    let service = "router-under-test";
    received
        .wait_trace(&trace_id, &[(service, SpanKind::Server, "tools/call meta")])
        .await;
    // In one process the gateway calls the agent directly; the spans still nest: gateway
    // server → relay client → agent server → upstream client → the upstream.
    let all: Vec<Got> = received
        .all()
        .into_iter()
        .filter(|s| s.trace_id() == trace_id && s.service == service)
        .collect();
    assert_eq!(all.len(), 4, "{all:#?}");
    let by_id = |id: &str| all.iter().find(|s| s.span_id() == id);
    let upstream = by_id(&upstream_parent).expect("the upstream's parent was exported");
    assert_eq!(upstream.kind(), SpanKind::Client);
    assert_eq!(upstream.attr("network.transport").as_deref(), Some("pipe"));
    let agent = by_id(&upstream.parent_id()).expect("the agent's span");
    assert_eq!(agent.kind(), SpanKind::Server);
    assert_eq!(agent.attr("mcpr.agent").as_deref(), Some("local"));
    let relay = by_id(&agent.parent_id()).expect("the relay's span");
    assert_eq!(relay.kind(), SpanKind::Client);
    let gateway = by_id(&relay.parent_id()).expect("the gateway's span");
    assert_eq!(gateway.kind(), SpanKind::Server);
    assert_eq!(gateway.parent_id(), "");
    assert_eq!(gateway.attr("mcpr.view").as_deref(), Some("transparent"));
    assert_eq!(
        gateway.attr("mcpr.caller").as_deref(),
        Some(key_id.as_str())
    );
    assert_eq!(
        gateway.attr("mcp.protocol.version").as_deref(),
        Some("2025-06-18")
    );
    for span in &all {
        assert_eq!(span.span.name, "tools/call meta");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampler_zero_exports_nothing_and_still_propagates() {
    let (endpoint, received) = grpc_receiver().await;
    let mut env = otel_env(&endpoint, "grpc");
    env.retain(|(k, _)| *k != "OTEL_TRACES_SAMPLER");
    env.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
    env.push(("OTEL_TRACES_SAMPLER_ARG", "0"));
    let (mut router, mut mcp) = traced_router(&env).await;
    for _ in 0..5 {
        let meta = upstream_meta(&mut mcp).await;
        let (_, _, flags) = traceparent_parts(meta["traceparent"].as_str().unwrap());
        assert_eq!(flags, "00", "not sampled, and the upstream is told so");
    }
    router.proc.terminate().expect("mcpr up stops on SIGTERM");
    // Whatever was buffered has been flushed at the exit.
    assert_eq!(received.all().len(), 0, "{:#?}", received.all());
}

#[tokio::test]
async fn a_wrong_tracing_variable_stops_the_start_naming_it() {
    let output = std::process::Command::new(mcpr_e2e::harness::bin("mcpr-edge-gateway"))
        .args(["--listen", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_TRACES_SAMPLER", "sometimes")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_TRACES_SAMPLER"), "{stderr}");
}

/// A `tools/call meta` on `session` with the HTTP `traceparent` header; returns the
/// upstream's `_meta` as it reports it.
async fn meta_with_traceparent(url: &str, session: &str, traceparent: &str) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", session)
        .header("traceparent", traceparent)
        .body(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "meta", "arguments": {}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text result: {answer}"));
    serde_json::from_str(text).unwrap()
}

/// The sampler decides once, at the gateway, before any span: through the three binaries a
/// dropped trace makes no span in any of them and still reaches the upstream (flags `00`,
/// the client's trace id when it sent one), and a kept one is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_trace_makes_no_span_anywhere_and_goes_on_with_flags_00() {
    let (endpoint, received) = grpc_receiver().await;
    let mut env = otel_env(&endpoint, "grpc");
    env.retain(|(k, _)| *k != "OTEL_TRACES_SAMPLER");
    // New traces are dropped; a client's decision is followed.
    env.push(("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"));
    env.push(("OTEL_TRACES_SAMPLER_ARG", "0"));
    // Held to the end: dropping it stops the binaries.
    let (_cluster, url, mut mcp) = traced_cluster(&env).await;
    let session = mcp.session.clone().unwrap();

    let mut dropped = Vec::new();
    for _ in 0..3 {
        let meta = upstream_meta(&mut mcp).await;
        let (trace_id, _, flags) = traceparent_parts(meta["traceparent"].as_str().unwrap());
        assert_eq!(flags, "00", "a new trace at ratio 0 is dropped: {meta}");
        assert!(!dropped.contains(&trace_id), "each call a trace of its own");
        dropped.push(trace_id);
    }
    let unsampled_client = "6e0c63257de34c926f9efcd03927272e";
    let meta = meta_with_traceparent(
        &url,
        &session,
        &format!("00-{unsampled_client}-a3ce929d0e0e4736-00"),
    )
    .await;
    let (trace_id, parent, flags) = traceparent_parts(meta["traceparent"].as_str().unwrap());
    assert_eq!(
        (trace_id.as_str(), flags.as_str()),
        (unsampled_client, "00"),
        "the client's unsampled trace goes on"
    );
    assert_ne!(parent, "a3ce929d0e0e4736", "with the router's own span id");

    // A client that samples is followed through the gateway and the remote agent.
    let sampled_client = "4bf92f3577b34da6a3ce929d0e0e4736";
    let meta = meta_with_traceparent(
        &url,
        &session,
        &format!("00-{sampled_client}-00f067aa0ba902b7-01"),
    )
    .await;
    let (trace_id, upstream_parent, flags) =
        traceparent_parts(meta["traceparent"].as_str().unwrap());
    assert_eq!((trace_id.as_str(), flags.as_str()), (sampled_client, "01"));
    let spans = received
        .wait_trace(
            sampled_client,
            &[
                (GATEWAY, SpanKind::Server, "tools/call meta"),
                (GATEWAY, SpanKind::Client, "tools/call meta"),
                (AGENT, SpanKind::Server, "tools/call meta"),
                (AGENT, SpanKind::Client, "tools/call meta"),
            ],
        )
        .await;
    assert_eq!(spans[0].parent_id(), "00f067aa0ba902b7");
    assert_eq!(spans[2].parent_id(), spans[1].span_id());
    assert_eq!(spans[3].span_id(), upstream_parent);
    // The sampled call came last, so whatever the dropped ones had made was exported with
    // or before its spans, in each process.
    let all = received.all();
    assert!(
        all.iter().all(|s| s.trace_id() == sampled_client),
        "only the sampled trace was exported: {:#?}",
        all.iter()
            .filter(|s| s.trace_id() != sampled_client)
            .map(|s| (&s.service, &s.span.name, s.trace_id()))
            .collect::<Vec<_>>()
    );
    assert_eq!(all.len(), 4, "{all:#?}");
}

/// At a ratio between 0 and 1 each call is kept or dropped whole: in `mcpr up` a kept call's
/// four spans share the trace id the upstream got with flags `01`, a dropped one has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_ratio_each_call_is_traced_whole_or_not_at_all() {
    let (endpoint, received) = http_receiver().await;
    let mut env = otel_env(&endpoint, "http/protobuf");
    env.retain(|(k, _)| *k != "OTEL_TRACES_SAMPLER");
    env.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
    env.push(("OTEL_TRACES_SAMPLER_ARG", "0.5"));
    let (mut router, mut mcp) = traced_router(&env).await;
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for _ in 0..40 {
        let meta = upstream_meta(&mut mcp).await;
        let (trace_id, _, flags) = traceparent_parts(meta["traceparent"].as_str().unwrap());
        match flags.as_str() {
            "01" => kept.push(trace_id),
            "00" => dropped.push(trace_id),
            other => panic!("flags {other:?}"),
        }
    }
    // 40 fair coins: fewer than 5 of either side has a chance below one in a million.
    assert!(
        kept.len() >= 5 && dropped.len() >= 5,
        "kept {}, dropped {}",
        kept.len(),
        dropped.len()
    );
    router.proc.terminate().expect("mcpr up stops on SIGTERM");
    for trace_id in &kept {
        received
            .wait_trace(
                trace_id,
                &[
                    ("mcpr", SpanKind::Server, "tools/call meta"),
                    ("mcpr", SpanKind::Client, "tools/call meta"),
                ],
            )
            .await;
    }
    // (The admin API's calls of the set-up and `initialize` are traces of their own.)
    let all = received.all();
    for trace_id in &kept {
        let spans = all.iter().filter(|s| &s.trace_id() == trace_id).count();
        assert_eq!(spans, 4, "a kept call's spans, all of them: {trace_id}");
    }
    let leaked: Vec<&Got> = all
        .iter()
        .filter(|s| dropped.contains(&s.trace_id()))
        .collect();
    assert!(leaked.is_empty(), "spans of dropped calls: {leaked:#?}");
    let meta_spans = all
        .iter()
        .filter(|s| s.span.name == "tools/call meta")
        .count();
    assert_eq!(
        meta_spans,
        4 * kept.len(),
        "the meta calls' spans are the kept ones"
    );
}

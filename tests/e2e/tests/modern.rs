//! Modern (2026-07-28) clients through the gateway, end to end with the real binaries:
//!
//! - rmcp's own client in its 2026-07-28 lifecycle (`server/discover`, then stateless
//!   requests with per-request `_meta`), on the flat `/mcp/all` and hierarchical `/mcp` views;
//! - raw requests for what the transport prescribes (discover, headers, removed methods);
//! - the bridge between the eras: an upstream that only speaks the legacy era asks the user
//!   something in the middle of a modern client's call (`elicitation/create`); the client
//!   gets an `InputRequiredResult`, retries with its `inputResponses`, and gets the answer —
//!   over as many rounds as the upstream asks.
//!
//! The legacy upstream is a small stdio MCP server written against the 2025-06-18 wire
//! (`LEGACY_SERVER`): the SDKs here (rmcp, the Python SDK 2.3.0) speak 2026-07-28 and refuse
//! server-to-client requests on a modern request, so they cannot play a legacy-only server.

use std::time::Duration;

use mcpr_e2e::harness::{Api, Cluster, Router, wait_for};
use mcpr_e2e::rmcp_client::text_of;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

/// A legacy-only MCP server (2025-06-18, line-delimited JSON over stdio): it ignores the
/// modern `_meta` keys and asks its client over server-to-client requests, as servers
/// written before 2026-07-28 do. `ask_name` asks once, `ask_twice` twice; both log first.
/// Calls run side by side, each waiting for its own answers.
const LEGACY_SERVER: &str = r#"
import json, sys

def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()

def read():
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    return json.loads(line)

# A call is a generator: it yields a question (message, field) and gets the answer back,
# so calls run side by side, each waiting for its own answer, as in a server with tasks.
asked = 0
waiting = {}

def advance(call, mid, step):
    global asked
    try:
        message, field = step(call)
    except StopIteration as done:
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": done.value}]}})
        return
    except RuntimeError as e:
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": str(e)}], "isError": True}})
        return
    asked += 1
    ask_id = f"ask-{asked}"
    waiting[ask_id] = (call, mid, field)
    send({"jsonrpc": "2.0", "id": ask_id, "method": "elicitation/create", "params": {
        "message": message,
        "requestedSchema": {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}}})

def answered(reply):
    call, mid, field = waiting.pop(reply["id"])
    if "error" in reply:
        advance(call, mid, lambda c: c.throw(RuntimeError(reply["error"]["message"])))
    elif reply["result"].get("action") != "accept":
        advance(call, mid, lambda c: c.throw(RuntimeError("the user chose " + str(reply["result"].get("action")))))
    else:
        value = reply["result"]["content"][field]
        advance(call, mid, lambda c: c.send(value))

def log(text):
    send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": text}})

def ask_name():
    log("asking")
    return "Hello, " + (yield ("What is your name?", "name")) + "!"

def ask_twice():
    log("asking")
    who = yield ("What is your name?", "name")
    return who + " likes " + (yield ("What is your favourite colour?", "colour"))

tools = [
    {"name": "ask_name", "description": "Greets the user by the name it asks for", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "ask_twice", "description": "Asks a name, then a colour", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "change_tools", "description": "Says its tool list changed", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "touch", "description": "Updates resource `uri` (subscribers hear of it)", "inputSchema": {"type": "object", "properties": {"uri": {"type": "string"}}}},
]
subscribed = set()

while True:
    message = read()
    method, mid = message.get("method"), message.get("id")
    if method is None and mid in waiting:
        answered(message)
        continue
    if method is None or mid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {"listChanged": True}, "logging": {}, "resources": {"subscribe": True}},
              "serverInfo": {"name": "legacy-only", "version": "1.0.0"},
              "instructions": "A server of the legacy era"}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": tools}})
    elif method in ("resources/subscribe", "resources/unsubscribe"):
        uri = message["params"]["uri"]
        if method == "resources/subscribe":
            subscribed.add(uri)
        else:
            subscribed.discard(uri)
        send({"jsonrpc": "2.0", "id": mid, "result": {}})
    elif method == "tools/call" and message["params"]["name"] == "change_tools":
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "changed"}]}})
    elif method == "tools/call" and message["params"]["name"] == "touch":
        uri = message["params"]["arguments"]["uri"]
        if uri in subscribed:
            send({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}})
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "touched"}]}})
    elif method == "tools/call" and message["params"]["name"] in ("ask_name", "ask_twice"):
        call = {"ask_name": ask_name, "ask_twice": ask_twice}[message["params"]["name"]]()
        advance(call, mid, lambda c: next(c))
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method not found: " + method}})
"#;

/// A legacy-only MCP server over streamable HTTP that, like servers written before
/// 2026-07-28, refuses an `MCP-Protocol-Version` it does not know with a plain 400. Prints
/// `listening on URL` once bound.
const LEGACY_HTTP_SERVER: &str = r#"
import json, sys, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN = {"2024-11-05", "2025-03-26", "2025-06-18"}

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=None, headers=()):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        if body is not None:
            self.send_header("content-type", "application/json" if not isinstance(body, bytes) else "text/plain")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(405, b"Method Not Allowed")

    def do_POST(self):
        message = json.loads(self.rfile.read(int(self.headers["content-length"])))
        version = self.headers.get("mcp-protocol-version")
        if version is not None and version not in KNOWN:
            return self.reply(400, ("Bad Request: Unsupported protocol version: " + version).encode())
        method, mid = message.get("method"), message.get("id")
        if mid is None:
            return self.reply(202)
        if method == "initialize":
            return self.reply(200, {"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}}, "serverInfo": {"name": "legacy-http", "version": "1.0.0"}}},
                [("mcp-session-id", uuid.uuid4().hex)])
        if method == "tools/list":
            return self.reply(200, {"jsonrpc": "2.0", "id": mid, "result": {"tools": [
                {"name": "echo", "description": "Echoes text", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]}})
        if method == "tools/call":
            text = message["params"]["arguments"]["text"]
            return self.reply(200, {"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
        self.reply(200, {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method not found: " + method}})

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on http://127.0.0.1:{server.server_address[1]}/mcp", flush=True)
server.serve_forever()
"#;

/// The `_meta` of a modern request from a client with these capabilities.
fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

/// One stateless 2026-07-28 request with its standard headers; returns the HTTP status and
/// every JSON-RPC message of the answer (one for JSON, each event for SSE).
async fn modern_post(url: &str, id: Value, method: &str, params: Value) -> (u16, Vec<Value>) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        request = request.header("mcp-name", name);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let response = tokio::time::timeout(Duration::from_secs(30), request.json(&body).send())
        .await
        .expect("the gateway answered within 30 s")
        .expect("POST to the gateway");
    let status = response.status().as_u16();
    let text = response.text().await.expect("read the answer");
    let messages = if text.trim_start().starts_with('{') {
        vec![serde_json::from_str(&text).expect("a JSON answer")]
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("an SSE event holds JSON"))
            .collect()
    };
    (status, messages)
}

/// The one input request of an InputRequiredResult: its key and the request.
fn only_input_request(result: &Value) -> (String, Value) {
    let requests = result["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1, "{result}");
    let (key, request) = requests.iter().next().expect("one input request");
    (key.clone(), request.clone())
}

/// Registers the legacy-only server as provider `legacy`; the script lives in the returned
/// directory.
async fn add_legacy_server(api: &Api) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("legacy_server.py");
    std::fs::write(&script, LEGACY_SERVER).expect("write the legacy server");
    api.add(json!({"name": "legacy", "runtime": {"kind": "process", "command": "python3", "args": [script]}}))
        .await;
    api.wait_state("legacy", "running").await;
    dir
}

async fn router_with_legacy_server() -> (Router, tempfile::TempDir) {
    let router = Router::start().await;
    let dir = add_legacy_server(&router.api()).await;
    (router, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_elicitation_reaches_a_modern_client_as_input_required() {
    let (router, _dir) = router_with_legacy_server().await;
    bridge_round_trips(&router.mcp_url("/mcp/p/legacy")).await;
}

/// The same with the three binaries apart: the upstream's questions and the client's
/// answers cross the gRPC relay between gateway and agent.
#[tokio::test(flavor = "multi_thread")]
async fn the_bridge_works_across_the_grpc_relay() {
    let cluster = Cluster::start(1, None).await;
    let _dir = add_legacy_server(&cluster.api()).await;
    let url = cluster.mcp_url(0, "/mcp/p/legacy");
    wait_known(&url).await;
    bridge_round_trips(&url).await;
}

/// Waits for a gateway to know the provider at `url`: its snapshot may trail the API by a
/// moment.
async fn wait_known(url: &str) {
    wait_for(
        "the gateway to know the provider",
        Duration::from_secs(10),
        || {
            let url = url.to_owned();
            async move {
                let (status, answer) = modern_post(
                    &url,
                    json!(0),
                    "server/discover",
                    json!({"_meta": meta(json!({}))}),
                )
                .await;
                (status == 200 && answer[0].get("result").is_some()).then_some(())
            }
        },
    )
    .await;
}

/// Modern clients are stateless, so a retry may reach another replica than the one that
/// asked, or come after that one went away. The sealed `requestState` carries the answers
/// given so far, and the other gateway runs the call again with them.
#[tokio::test(flavor = "multi_thread")]
async fn a_bridged_call_goes_on_at_another_replica() {
    let mut cluster = Cluster::start(1, None).await;
    cluster.add_gateway();
    let _dir = add_legacy_server(&cluster.api()).await;
    let urls = [
        cluster.mcp_url(0, "/mcp/p/legacy"),
        cluster.mcp_url(1, "/mcp/p/legacy"),
    ];
    for url in &urls {
        wait_known(url).await;
    }
    let capable = meta(json!({"elicitation": {}}));
    let answer_with = |request: &Value, result: &Value, field: &str, reply: &str| {
        let (key, input) = only_input_request(result);
        assert_eq!(input["params"]["requestedSchema"]["required"][0], field);
        let mut retry = request.clone();
        retry["inputResponses"] = json!({ key: {"action": "accept", "content": { field: reply }} });
        retry["requestState"] = result["requestState"].clone();
        retry
    };

    // Round one on gateway 0, round two on gateway 1, the end on gateway 0 again.
    let twice = json!({"name": "ask_twice", "arguments": {}, "_meta": capable});
    let (_, answer) = modern_post(&urls[0], json!(1), "tools/call", twice.clone()).await;
    let mut result = answer.last().unwrap()["result"].clone();
    for (round, (field, reply)) in [("name", "Cy"), ("colour", "red")].into_iter().enumerate() {
        assert_eq!(result["resultType"], "input_required", "{result}");
        let retry = answer_with(&twice, &result, field, reply);
        let url = &urls[(round + 1) % 2];
        let (_, answer) = modern_post(url, json!(2 + round), "tools/call", retry).await;
        result = answer.last().unwrap()["result"].clone();
    }
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(text_of(&result), "Cy likes red");

    // The gateway that asked goes away before the answer comes: the other one ends the call.
    let once = json!({"name": "ask_name", "arguments": {}, "_meta": capable});
    let (_, answer) = modern_post(&urls[0], json!(10), "tools/call", once.clone()).await;
    let result = answer.last().unwrap()["result"].clone();
    cluster.gateways[0].kill();
    let retry = answer_with(&once, &result, "name", "Dee");
    let (_, answer) = modern_post(&urls[1], json!(11), "tools/call", retry).await;
    let result = &answer.last().unwrap()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(text_of(result), "Hello, Dee!");
}

/// Discovery, one round, two rounds with logs, and a client without the capability.
async fn bridge_round_trips(url: &str) {
    let url = url.to_owned();
    // server/discover is the gateway's, from the upstream's initialize result.
    let (status, answer) = modern_post(
        &url,
        json!(1),
        "server/discover",
        json!({"_meta": meta(json!({}))}),
    )
    .await;
    assert_eq!(status, 200, "{answer:?}");
    let discovered = &answer[0]["result"];
    assert_eq!(
        discovered["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "legacy-only"
    );
    assert_eq!(discovered["instructions"], "A server of the legacy era");
    assert!(
        discovered["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );

    // The call: the upstream's elicitation request comes back as an InputRequiredResult,
    // and its log message does not, as the request asked for no log level.
    let call = |meta: Value| json!({"name": "ask_name", "arguments": {}, "_meta": meta});
    let capable = meta(json!({"elicitation": {}}));
    let (status, answer) =
        modern_post(&url, json!("c1"), "tools/call", call(capable.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(answer.len(), 1, "no log without a logLevel: {answer:?}");
    let result = &answer[0]["result"];
    assert_eq!(answer[0]["id"], "c1");
    assert_eq!(result["resultType"], "input_required", "{result}");
    let (key, input) = only_input_request(result);
    assert_eq!(input["method"], "elicitation/create");
    assert_eq!(input["params"]["message"], "What is your name?");
    let state = result["requestState"].as_str().unwrap().to_owned();

    // The retry carries the answer; the upstream call goes on to its result.
    let mut retry = call(capable.clone());
    retry["inputResponses"] = json!({ key: {"action": "accept", "content": {"name": "Ann"}} });
    retry["requestState"] = json!(state);
    let (status, answer) = modern_post(&url, json!("c2"), "tools/call", retry.clone()).await;
    assert_eq!(status, 200);
    let result = &answer.last().unwrap()["result"];
    assert_eq!(answer.last().unwrap()["id"], "c2");
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(text_of(result), "Hello, Ann!");

    // A state used once more runs the call again with the recorded answer, as a stateless
    // server would; altered, or for another tool, it is refused.
    let (_, answer) = modern_post(&url, json!("c3"), "tools/call", retry.clone()).await;
    assert_eq!(text_of(&answer.last().unwrap()["result"]), "Hello, Ann!");
    let mut altered = retry.clone();
    altered["requestState"] = json!(format!("{state}x"));
    let (_, answer) = modern_post(&url, json!("c4"), "tools/call", altered).await;
    assert_eq!(answer[0]["error"]["code"], -32602, "{answer:?}");
    assert!(
        answer[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not made by this router"),
        "{answer:?}"
    );
    let mut other_tool = retry.clone();
    other_tool["name"] = json!("ask_twice");
    let (_, answer) = modern_post(&url, json!("c5"), "tools/call", other_tool).await;
    assert!(
        answer[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to another request"),
        "{answer:?}"
    );

    // Two rounds, with the log level asked for this time.
    let mut logging = capable.clone();
    logging["io.modelcontextprotocol/logLevel"] = json!("info");
    let twice = |meta: Value| json!({"name": "ask_twice", "arguments": {}, "_meta": meta});
    let (_, answer) = modern_post(&url, json!(10), "tools/call", twice(logging.clone())).await;
    assert_eq!(answer[0]["method"], "notifications/message", "{answer:?}");
    let mut result = answer.last().unwrap()["result"].clone();
    let mut replies = ["Bo", "green"].into_iter();
    let mut rounds = 0;
    while result["resultType"] == "input_required" {
        rounds += 1;
        let (key, input) = only_input_request(&result);
        let field = input["params"]["requestedSchema"]["required"][0]
            .as_str()
            .unwrap();
        let mut retry = twice(logging.clone());
        retry["inputResponses"] =
            json!({ key: {"action": "accept", "content": { field: replies.next().unwrap() }} });
        retry["requestState"] = result["requestState"].clone();
        let (_, answer) = modern_post(&url, json!(10 + rounds), "tools/call", retry).await;
        result = answer.last().unwrap()["result"].clone();
    }
    assert_eq!(rounds, 2);
    assert_eq!(text_of(&result), "Bo likes green");

    // A client without the elicitation capability is never asked: the upstream hears no.
    let (_, answer) = modern_post(&url, json!(20), "tools/call", call(meta(json!({})))).await;
    let result = &answer[0]["result"];
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        text_of(result).contains("elicitation capability"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn modern_requests_are_checked_as_the_transport_says() {
    let (router, _dir) = router_with_legacy_server().await;
    let url = router.mcp_url("/mcp/p/legacy");
    // Removed methods: 404 and -32601.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
    ] {
        let (status, answer) =
            modern_post(&url, json!(1), method, json!({"_meta": meta(json!({}))})).await;
        assert_eq!(
            (status, &answer[0]["error"]["code"]),
            (404, &json!(-32601)),
            "{method}"
        );
    }
    // Incomplete _meta: 400 and -32602, with the request's id.
    let (status, answer) = modern_post(&url, json!(2), "tools/list", json!({"_meta": {}})).await;
    assert_eq!(
        (status, &answer[0]["error"]["code"], &answer[0]["id"]),
        (400, &json!(-32602), &json!(2))
    );
    // Mcp-Name that does not match the body: 400 and HeaderMismatch.
    let response = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "other")
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "ask_name", "arguments": {}, "_meta": meta(json!({}))}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32020, "{body}");
    // An unknown version: 400, UnsupportedProtocolVersion naming what is supported.
    let mut unknown = meta(json!({}));
    unknown["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let response = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2099-01-01")
        .header("mcp-method", "tools/list")
        .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": unknown}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32022, "{body}");
    assert_eq!(body["error"]["data"]["requested"], "2099-01-01");
}

/// The messages of an open SSE answer, read as they come.
struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    fn of(response: reqwest::Response) -> SseReader {
        SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Value {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).expect("an SSE event holds JSON");
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream is open")
                .expect("read the stream");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// `subscriptions/listen` on a legacy-only upstream: the gateway serves the stream itself,
/// from the upstream's list changes and the updates of the subscribed URIs only.
#[tokio::test(flavor = "multi_thread")]
async fn listen_on_a_legacy_upstream_is_served_by_the_gateway() {
    let (router, _dir) = router_with_legacy_server().await;
    let url = router.mcp_url("/mcp/p/legacy");
    let body = json!({"jsonrpc": "2.0", "id": "L", "method": "subscriptions/listen", "params": {
        "_meta": meta(json!({})),
        "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["test://a"]}
    }});
    let response = post_listen(&url, &body).await;
    assert_eq!(response.status(), 200);
    let mut listen = SseReader::of(response);
    let ack = acknowledged(&mut listen).await;
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L"
    );

    let call = |name: &str, arguments: Value| json!({"name": name, "arguments": arguments, "_meta": meta(json!({}))});
    // An update of a URI nobody listed is not delivered; the listed one and list changes are.
    modern_post(
        &url,
        json!(1),
        "tools/call",
        call("touch", json!({"uri": "test://b"})),
    )
    .await;
    modern_post(
        &url,
        json!(2),
        "tools/call",
        call("touch", json!({"uri": "test://a"})),
    )
    .await;
    let updated = listen.next().await;
    assert_eq!(
        updated["method"], "notifications/resources/updated",
        "{updated}"
    );
    assert_eq!(updated["params"]["uri"], "test://a");
    assert_eq!(
        updated["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L"
    );
    modern_post(
        &url,
        json!(3),
        "tools/call",
        call("change_tools", json!({})),
    )
    .await;
    let changed = listen.next().await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L"
    );
}

/// A relayed listen stream outlives the relay's time limit: the gateway opens it again
/// upstream, and the client sees one acknowledgement and every notification after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_listen_stream_outlives_the_request_timeout() {
    let router = Router::start_with(&["--request-timeout-secs", "1"], &[]).await;
    router
        .api()
        .add(json!({"name": "conf", "runtime": {"kind": "process", "command": mcpr_e2e::harness::bin("mcpr-conformance-server")}}))
        .await;
    router.api().wait_state("conf", "running").await;
    let url = router.mcp_url("/mcp/p/conf");
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen", "params": {
        "_meta": meta(json!({})), "notifications": {"toolsListChanged": true}
    }});
    let response = post_listen(&url, &body).await;
    let mut listen = SseReader::of(response);
    acknowledged(&mut listen).await;
    // Past the 1 s limit, twice over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let trigger =
        json!({"name": "test_trigger_tool_change", "arguments": {}, "_meta": meta(json!({}))});
    let (status, _) = modern_post(&url, json!(1), "tools/call", trigger).await;
    assert_eq!(status, 200);
    let changed = listen.next().await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
}

/// A legacy HTTP upstream that refuses the modern version header: the agent sends it the
/// modern client's request again as a legacy one, and every later one too.
#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_http_upstream_that_refuses_the_modern_version_gets_legacy_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("legacy_http_server.py");
    std::fs::write(&script, LEGACY_HTTP_SERVER).expect("write the server");
    let mut command = std::process::Command::new("python3");
    command.arg(&script);
    let server = mcpr_e2e::harness::Proc::spawn("legacy-http", command);
    let upstream = wait_for("the legacy HTTP server", Duration::from_secs(15), || {
        let log = server.log();
        async move {
            log.lines()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(str::to_owned)
        }
    })
    .await;
    let router = Router::start().await;
    router
        .api()
        .add(json!({"name": "old", "runtime": {"kind": "remote", "url": upstream}}))
        .await;
    router.api().wait_state("old", "running").await;
    let url = router.mcp_url("/mcp/p/old");
    for text in ["first", "second"] {
        let call = json!({"name": "echo", "arguments": {"text": text}, "_meta": meta(json!({}))});
        let (status, answer) = modern_post(&url, json!(text), "tools/call", call).await;
        assert_eq!(status, 200, "{answer:?}");
        let result = &answer[0]["result"];
        assert_eq!(text_of(result), text, "{answer:?}");
        assert_eq!(result["resultType"], "complete");
    }
}

/// rmcp's client in the modern lifecycle (`server/discover`, no fallback to `initialize`).
async fn modern_rmcp_client(url: &str) -> RunningService<RoleClient, ClientConfig> {
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("e2e-modern", "1"),
    );
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let service = tokio::time::timeout(
        Duration::from_secs(30),
        client.serve_with_lifecycle(StreamableHttpClientTransport::from_uri(url), lifecycle),
    )
    .await
    .expect("discovery within 30 s")
    .unwrap_or_else(|e| panic!("a 2026-07-28 client discovers {url}: {e}"));
    service
        .peer()
        .set_response_cache_config(rmcp::ClientCacheConfig::disabled())
        .await;
    service
}

async fn call_text(
    client: &RunningService<RoleClient, ClientConfig>,
    name: &str,
    args: Value,
) -> String {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args);
    let result = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    text_of(&serde_json::to_value(result).unwrap())
}

/// rmcp's client speaking 2026-07-28 on the flat and hierarchical views: discovery from
/// the router, then stateless tools/list and tools/call reaching the provider.
#[tokio::test(flavor = "multi_thread")]
async fn rmcp_modern_client_on_the_flat_and_hierarchical_views() {
    let router = Router::start().await;
    router.api().add_fixture("fx", &[]).await;
    router.api().wait_state("fx", "running").await;

    let flat = modern_rmcp_client(&router.mcp_url("/mcp/all")).await;
    let info = flat.peer().peer_info().expect("discovered");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("mcp-router")
    );
    let tools = flat.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "fx__echo"), "{tools:?}");
    assert_eq!(
        call_text(&flat, "fx__echo", json!({"text": "flat hi"})).await,
        "flat hi"
    );

    let hierarchical = modern_rmcp_client(&router.mcp_url("/mcp")).await;
    let tools = hierarchical.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "call_tool"), "{tools:?}");
    let providers = call_text(&hierarchical, "list_providers", json!({})).await;
    assert!(providers.contains("fx"), "{providers}");
    let deep = call_text(
        &hierarchical,
        "call_tool",
        json!({"provider": "fx", "tool": "echo", "arguments": {"text": "deep hi"}}),
    )
    .await;
    assert_eq!(deep, "deep hi");
}

/// The listen stream's first message, which must be its acknowledgement.
async fn acknowledged(listen: &mut SseReader) -> Value {
    let ack = listen.next().await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    ack
}

/// POSTs a modern `subscriptions/listen` request (its stream is the response).
async fn post_listen(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A line-delimited stdio MCP client: writes requests, reads lines until the answer.
struct StdioLines {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl StdioLines {
    fn spawn(args: &[&str]) -> StdioLines {
        let mut child = tokio::process::Command::new(mcpr_e2e::harness::bin("mcpr"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("MCPR_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start mcpr stdio");
        let stdin = child.stdin.take().unwrap();
        let stdout = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            child.stdout.take().unwrap(),
        ));
        StdioLines {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends a request; returns every message up to and including its answer.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Vec<Value> {
        use tokio::io::AsyncWriteExt;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 20 s: {seen:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended before the answer to {method}"));
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout holds only JSON-RPC, got {line:?}: {e}"));
            let done = message["id"] == json!(id);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

/// `mcpr stdio` speaks both eras on one connection: a 2026-07-28 client's stateless requests
/// (`server/discover`, then calls with their `_meta`), in-process and bridged to a running
/// router (`--url`), where the bridge gives them the headers HTTP needs.
#[tokio::test]
async fn modern_clients_over_mcpr_stdio() {
    let router = Router::start().await;
    router.api().add_fixture("desk", &[]).await;
    // Its test_custom_headers mirrors `region` in Mcp-Param-Region (x-mcp-header).
    router
        .api()
        .add(json!({"name": "conf", "runtime": {"kind": "process", "command": mcpr_e2e::harness::bin("mcpr-conformance-server")}}))
        .await;
    router.api().wait_state("desk", "running").await;
    let port = mcpr_e2e::harness::free_port().to_string();
    let data_dir = router.data_dir.to_str().unwrap().to_owned();
    let url = router.url();
    for args in [
        vec![
            "stdio",
            "--port",
            port.as_str(),
            "--data-dir",
            data_dir.as_str(),
        ],
        vec!["--url", url.as_str(), "stdio"],
    ] {
        let mut client = StdioLines::spawn(&args);
        let discovered = client
            .request(1, "server/discover", json!({"_meta": meta(json!({}))}))
            .await;
        let result = &discovered.last().unwrap()["result"];
        assert!(
            result["supportedVersions"]
                .as_array()
                .is_some_and(|v| v.contains(&json!("2026-07-28"))),
            "{args:?}: {discovered:?}"
        );
        let listed = client
            .request(2, "tools/list", json!({"_meta": meta(json!({}))}))
            .await;
        let tools = listed.last().unwrap()["result"]["tools"].clone();
        assert!(
            tools
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == "call_tool")),
            "{args:?}: {listed:?}"
        );
        // `mcpr stdio` runs its own agent, which starts desk: retry until it answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut id = 100;
        let called = loop {
            id += 1;
            let answer = client
                .request(
                    id,
                    "tools/call",
                    json!({"name": "call_tool", "arguments": {"provider": "desk", "tool": "echo", "arguments": {"text": "modern over stdio"}}, "_meta": meta(json!({}))}),
                )
                .await;
            let result = answer.last().unwrap()["result"].clone();
            if result["isError"] != json!(true) || std::time::Instant::now() > deadline {
                break result;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(text_of(&called), "modern over stdio", "{args:?}");
        // A legacy request on the same connection still works (the handshake).
        let legacy = client
            .request(
                4,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}),
            )
            .await;
        assert_eq!(
            legacy.last().unwrap()["result"]["protocolVersion"],
            "2025-06-18",
            "{args:?}"
        );
        let _ = client.child.kill().await;
    }

    // Through the bridge to a view with the provider's own tools: a tool with an
    // x-mcp-header argument gets the Mcp-Param-* header the HTTP transport requires, which
    // the stdio client cannot send (the bridge reads the tool list for it).
    router.api().wait_state("conf", "running").await;
    let transparent = router.mcp_url("/mcp/p/conf");
    let mut client = StdioLines::spawn(&["--url", transparent.as_str(), "stdio"]);
    let answer = client
        .request(
            5,
            "tools/call",
            json!({"name": "test_custom_headers", "arguments": {"region": "eu-west 1", "query": "q"}, "_meta": meta(json!({}))}),
        )
        .await;
    let result = &answer.last().unwrap()["result"];
    assert_eq!(text_of(result), "region=eu-west 1, query=q", "{answer:?}");
    let _ = client.child.kill().await;
}

/// The next message on a GET stream, within 10 s.
async fn next_event(stream: &mut mcpr_e2e::harness::Answer) -> Value {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

/// Two legacy clients share the provider's one upstream session (`shared`): each gets the
/// updates of the resources it subscribed to only, and one client's unsubscribe does not
/// end the other's subscription upstream.
#[tokio::test]
async fn resource_updates_reach_their_subscribers_only() {
    let (router, _dir) = router_with_legacy_server().await;
    let url = router.mcp_url("/mcp/p/legacy");
    let (mut a, mut b) = (
        mcpr_e2e::harness::RawMcp::new(&url),
        mcpr_e2e::harness::RawMcp::new(&url),
    );
    a.initialize().await;
    b.initialize().await;
    let mut a_events = a.open_stream().await;
    let mut b_events = b.open_stream().await;
    for (client, uris) in [
        (&mut a, &["test://shared", "test://a-marker"][..]),
        (&mut b, &["test://shared", "test://b-marker"][..]),
    ] {
        for uri in uris {
            let answer = client
                .request("resources/subscribe", json!({"uri": uri}))
                .await;
            assert_eq!(answer["result"], json!({}), "{answer}");
        }
    }
    let touch = |uri: &str| json!({"name": "touch", "arguments": {"uri": uri}});
    // Both subscribed: both hear of it.
    a.request("tools/call", touch("test://shared")).await;
    for events in [&mut a_events, &mut b_events] {
        let event = next_event(events).await;
        assert_eq!(event["params"]["uri"], "test://shared", "{event}");
    }
    // a unsubscribes; b's subscription stays upstream: b hears of the next update, and a
    // hears only of its own marker, sent after it (one session's events keep their order).
    let answer = a
        .request("resources/unsubscribe", json!({"uri": "test://shared"}))
        .await;
    assert_eq!(answer["result"], json!({}), "{answer}");
    a.request("tools/call", touch("test://shared")).await;
    a.request("tools/call", touch("test://a-marker")).await;
    let event = next_event(&mut b_events).await;
    assert_eq!(event["params"]["uri"], "test://shared", "{event}");
    let event = next_event(&mut a_events).await;
    assert_eq!(
        event["params"]["uri"], "test://a-marker",
        "a no longer subscribes to test://shared: {event}"
    );
    // The last subscriber leaves: the upstream is unsubscribed and sends nothing more.
    b.request("resources/unsubscribe", json!({"uri": "test://shared"}))
        .await;
    b.request("tools/call", touch("test://shared")).await;
    b.request("tools/call", touch("test://b-marker")).await;
    let event = next_event(&mut b_events).await;
    assert_eq!(event["params"]["uri"], "test://b-marker", "{event}");
}

/// A stdio server of the modern era alone that, unlike rmcp's, stays up after refusing
/// `initialize`; every start appends a line to the file named by its first argument.
const MODERN_ONLY_SERVER: &str = r#"
import json, sys

def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()

with open(sys.argv[1], "a") as starts:
    starts.write("start\n")

for line in sys.stdin:
    message = json.loads(line)
    method, mid = message.get("method"), message.get("id")
    if method is None or mid is None:
        continue
    meta = message.get("params", {}).get("_meta", {})
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32022, "message": "unsupported protocol version",
              "data": {"supported": ["2026-07-28"], "requested": message["params"].get("protocolVersion")}}})
    elif method == "server/discover":
        send({"jsonrpc": "2.0", "id": mid, "result": {"resultType": "complete", "supportedVersions": ["2026-07-28"],
              "capabilities": {"tools": {}}, "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern-only", "version": "1"}}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"resultType": "complete",
              "tools": [{"name": "version", "description": "Says the version the request named", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        text = "called with " + str(meta.get("io.modelcontextprotocol/protocolVersion"))
        send({"jsonrpc": "2.0", "id": mid, "result": {"resultType": "complete", "content": [{"type": "text", "text": text}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method not found: " + method}})
"#;

/// A modern-only stdio server still up after refusing `initialize` is asked
/// `server/discover` on the same connection: it starts once, and serves legacy clients
/// through the agent's statelessly.
#[tokio::test(flavor = "multi_thread")]
async fn a_modern_only_stdio_server_that_outlives_its_refusal_starts_once() {
    let router = Router::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("modern_only.py");
    let starts = dir.path().join("starts");
    std::fs::write(&script, MODERN_ONLY_SERVER).expect("write the server");
    let api = router.api();
    api.add(json!({"name": "modern", "runtime": {"kind": "process", "command": "python3", "args": [script, starts]}}))
        .await;
    let server = api.wait_state("modern", "running").await;
    assert_eq!(server["status"]["restart_count"], 0, "{server}");
    assert_eq!(server["status"]["tool_count"], 1, "{server}");
    let mut client = mcpr_e2e::harness::RawMcp::new(&router.mcp_url("/mcp/p/modern"));
    client.initialize().await;
    let result = client.call("version", json!({})).await.expect("a result");
    assert_eq!(text_of(&result), "called with 2026-07-28");
    let started = std::fs::read_to_string(&starts).expect("the starts file");
    assert_eq!(started.lines().count(), 1, "started once: {started:?}");
}

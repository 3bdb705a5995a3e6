//! Upstream servers talking back while a tool runs: progress, logging, sampling,
//! elicitation and roots, through a `shared` upstream session, reaching exactly the client
//! whose call caused them — in `mcpr up` (in-process relay) and in the distributed form
//! (gRPC relay).

use mcpr_e2e::harness::{Api, Cluster, RawMcp, Router, bin};
use serde_json::{Value, json};

async fn add_interactive(api: &Api, name: &str) {
    api.add(json!({
        "name": name,
        "runtime": {"kind": "process", "command": bin("mcpr-fixture-server"), "args": ["--name", name, "--interactive"]},
    }))
    .await;
    api.wait_state(name, "running").await;
}

fn texts(result: &Value) -> String {
    result["result"]["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// Two clients share one upstream session; each calls `progress` with the SAME token and
/// gets exactly its own three progress notifications, then its answer.
async fn progress_is_routed_per_client(url: &str) {
    let mut a = RawMcp::new(url);
    let mut b = RawMcp::new(url);
    a.initialize().await;
    b.initialize().await;
    let params =
        json!({"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}});
    let ((a_id, a_answer), (b_id, b_answer)) = tokio::join!(
        a.stream("tools/call", params.clone()),
        b.stream("tools/call", params.clone())
    );
    let (a_all, b_all) = tokio::join!(a_answer.all(), b_answer.all());
    for (id, all) in [(a_id, a_all), (b_id, b_all)] {
        let progress: Vec<&Value> = all
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 3, "exactly its own progress: {all:?}");
        for (i, p) in progress.iter().enumerate() {
            assert_eq!(
                p["params"]["progressToken"], "tok",
                "the client's own token comes back"
            );
            assert_eq!(p["params"]["progress"].as_f64(), Some((i + 1) as f64));
        }
        let last = all.last().unwrap();
        assert_eq!(last["id"], json!(id));
        assert_eq!(texts(last), "did 3 steps");
    }
}

/// A's call asks for sampling, B's for elicitation, at the same time; each request reaches
/// only its own client, and each answer goes back to the right upstream request.
async fn server_requests_reach_the_right_client(url: &str) {
    let mut a = RawMcp::new(url);
    let mut b = RawMcp::new(url);
    a.initialize().await;
    b.initialize().await;
    let (_, mut a_answer) = a
        .stream(
            "tools/call",
            json!({"name": "sample", "arguments": {"prompt": "what is six times seven?"}}),
        )
        .await;
    let (_, mut b_answer) = b
        .stream(
            "tools/call",
            json!({"name": "elicit", "arguments": {"message": "Who are you?"}}),
        )
        .await;
    let a_request = a_answer.next().await.expect("A gets the sampling request");
    assert_eq!(a_request["method"], "sampling/createMessage", "{a_request}");
    assert_eq!(
        a_request["params"]["messages"][0]["content"]["text"],
        "what is six times seven?"
    );
    let b_request = b_answer
        .next()
        .await
        .expect("B gets the elicitation request");
    assert_eq!(b_request["method"], "elicitation/create", "{b_request}");
    assert_eq!(b_request["params"]["message"], "Who are you?");
    assert_ne!(a_request["id"], b_request["id"]);

    let status = a
        .send(json!({"jsonrpc": "2.0", "id": a_request["id"], "result": {"role": "assistant", "content": {"type": "text", "text": "forty-two"}, "model": "test"}}))
        .await;
    assert_eq!(status, 202);
    let status = b.send(json!({"jsonrpc": "2.0", "id": b_request["id"], "result": {"action": "accept", "content": {"name": "Bo"}}})).await;
    assert_eq!(status, 202);

    let a_rest = a_answer.all().await;
    assert_eq!(a_rest.len(), 1, "only the answer follows: {a_rest:?}");
    assert_eq!(texts(&a_rest[0]), "forty-two");
    let b_rest = b_answer.all().await;
    assert_eq!(b_rest.len(), 1, "{b_rest:?}");
    let elicited = texts(&b_rest[0]);
    assert!(
        elicited.contains("accept") && elicited.contains("Bo"),
        "{elicited}"
    );

    // A forged or repeated answer is dropped, not delivered anywhere.
    assert_eq!(
        a.send(json!({"jsonrpc": "2.0", "id": a_request["id"], "result": {}}))
            .await,
        202
    );
}

/// Logging during a call reaches the caller on the call's own stream.
async fn logging_reaches_the_caller(url: &str) {
    let mut a = RawMcp::new(url);
    a.initialize().await;
    let (_, answer) = a
        .stream(
            "tools/call",
            json!({"name": "log_message", "arguments": {"text": "hello log"}}),
        )
        .await;
    let all = answer.all().await;
    let log = all
        .iter()
        .find(|m| m["method"] == "notifications/message")
        .expect("a log notification");
    assert_eq!(log["params"]["data"], "hello log");
    assert_eq!(texts(all.last().unwrap()), "logged");
}

/// A client cancels its long call: the upstream is told, the call ends at once, and the
/// session goes on.
async fn cancellation_ends_the_call(url: &str) {
    let mut a = RawMcp::new(url);
    a.initialize().await;
    let started = std::time::Instant::now();
    // The answer's headers come with the answer itself (nothing streams before it), so the
    // call runs in one task and the cancellation is sent from another.
    let call = a.post_bytes(json!({"jsonrpc": "2.0", "id": 777, "method": "tools/call", "params": {"name": "slow", "arguments": {"ms": 20000}}}).to_string());
    let cancel = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        a.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 777, "reason": "user"}})).await
    };
    let (answer, status) = tokio::join!(call, cancel);
    assert_eq!(status, 202);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "cancelled promptly: {:?}",
        started.elapsed()
    );
    assert_eq!(answer.body["id"], 777);
    assert_eq!(answer.body["error"]["code"], -32800, "{}", answer.body);
    assert_eq!(
        texts(
            &a.request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "still"}})
            )
            .await
        ),
        "still"
    );
}

#[tokio::test]
async fn all_in_one_routes_upstream_messages_to_their_client() {
    let router = Router::start().await;
    add_interactive(&router.api(), "talk").await;
    let url = router.mcp_url("/mcp/p/talk");
    progress_is_routed_per_client(&url).await;
    server_requests_reach_the_right_client(&url).await;
    logging_reaches_the_caller(&url).await;
    cancellation_ends_the_call(&url).await;

    // The hierarchical view's call_tool carries them too.
    let mut h = RawMcp::new(&router.mcp_url("/mcp"));
    h.initialize().await;
    let (_, answer) = h
        .stream("tools/call", json!({"name": "call_tool", "arguments": {"provider": "talk", "tool": "progress", "arguments": {"steps": 2}}, "_meta": {"progressToken": 5}}))
        .await;
    let all = answer.all().await;
    assert_eq!(
        all.iter()
            .filter(|m| m["params"]["progressToken"] == 5)
            .count(),
        2,
        "{all:?}"
    );
}

#[tokio::test]
async fn distributed_routes_upstream_messages_over_the_grpc_relay() {
    let cluster = Cluster::start(1, None).await;
    add_interactive(&cluster.api(), "talk").await;
    let url = cluster.mcp_url(0, "/mcp/p/talk");
    // The gateway's snapshot may trail the API by a moment.
    mcpr_e2e::harness::wait_for("the gateway to know talk", std::time::Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let probe = RawMcp::new(&url);
            let response = probe.post_bytes(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"p","version":"1"}}}"#).await;
            (response.status == 200 && response.body.get("result").is_some()).then_some(())
        }
    })
    .await;
    progress_is_routed_per_client(&url).await;
    server_requests_reach_the_right_client(&url).await;
    logging_reaches_the_caller(&url).await;
    cancellation_ends_the_call(&url).await;
}

/// List changes reach every client of the provider on its GET stream, with event ids; a
/// client that reconnects with `Last-Event-ID` gets what it missed.
#[tokio::test]
async fn get_stream_carries_list_changes_and_resumes() {
    let router = Router::start().await;
    router.api().add(json!({"name": "conf", "runtime": {"kind": "process", "command": bin("mcpr-conformance-server")}})).await;
    router.api().wait_state("conf", "running").await;
    let url = router.mcp_url("/mcp/p/conf");
    let mut watcher = RawMcp::new(&url);
    watcher.initialize().await;
    // A newer GET on the same session replaces an open one (a reconnecting client).
    let mut replaced = watcher.open_stream().await;
    assert_eq!(replaced.status, 200);
    let mut stream = watcher.open_stream().await;
    assert_eq!(stream.status, 200);
    assert!(
        replaced.next_with_id().await.is_none(),
        "the older stream ends"
    );

    let mut actor = RawMcp::new(&url);
    actor.initialize().await;
    actor
        .request(
            "tools/call",
            json!({"name": "test_trigger_tool_change", "arguments": {}}),
        )
        .await;
    let (event_id, changed) = stream
        .next_with_id()
        .await
        .expect("a list change on the GET stream");
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    drop(stream);

    // Reconnect saying the last event seen was the one before: it comes again.
    let mut resumed = watcher.open_stream_from(event_id - 1).await;
    assert_eq!(resumed.status, 200);
    let (again_id, again) = resumed
        .next_with_id()
        .await
        .expect("the missed event again");
    assert_eq!(
        (again_id, &again["method"]),
        (event_id, &json!("notifications/tools/list_changed"))
    );
}

/// A POST answer stream carries event ids, and its request goes on when the connection
/// drops: a GET naming the last event the client got resumes that stream (not the GET
/// stream) with what followed, through to the answer — whether the call is still running
/// or already done.
#[tokio::test]
async fn a_dropped_answer_stream_resumes_with_last_event_id() {
    let router = Router::start().await;
    add_interactive(&router.api(), "talk").await;
    let mut client = RawMcp::new(&router.mcp_url("/mcp/p/talk"));
    client.initialize().await;
    for (steps, pause) in [(10u64, 0u64), (3, 500)] {
        let (id, mut answer) = client
            .stream(
                "tools/call",
                json!({"name": "progress", "arguments": {"steps": steps}, "_meta": {"progressToken": "p"}}),
            )
            .await;
        assert!(answer.sse, "progress switches the answer to SSE");
        let (first_id, first) = answer
            .next_with_id()
            .await
            .expect("a first event with an id");
        assert_eq!(first["params"]["progress"].as_f64(), Some(1.0), "{first}");
        drop(answer);
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;

        let mut resumed = client.open_stream_from(first_id).await;
        assert_eq!(resumed.status, 200);
        let mut last_id = first_id;
        let mut progress = Vec::new();
        let result = loop {
            let (event_id, message) = resumed
                .next_with_id()
                .await
                .expect("the stream goes on to the answer");
            assert!(event_id > last_id, "ids grow: {event_id} after {last_id}");
            last_id = event_id;
            match message["params"]["progress"].as_f64() {
                Some(step) => progress.push(step as u64),
                None => break message,
            }
        };
        assert_eq!(progress, (2..=steps).collect::<Vec<_>>(), "steps {steps}");
        assert_eq!(result["id"], id);
        assert_eq!(texts(&result), format!("did {steps} steps"));
        assert!(
            resumed.next_with_id().await.is_none(),
            "it ends after the answer"
        );
    }
}

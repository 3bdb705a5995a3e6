//! The `remote` runtime's HTTP client end to end: redirects (followed on the server's own
//! origin and remembered, refused to another one) and the HTTP proxy named by the
//! environment (`HTTP_PROXY`, tunnelled with `CONNECT`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpr_e2e::harness::{HttpFixture, Router, free_port, wait_for};
use mcpr_e2e::rmcp_client::connect_http;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn same_origin_redirects_are_followed_and_others_refused() {
    let fixture = HttpFixture::start("moved", &[]).await;
    let base = fixture.url.trim_end_matches("/mcp").to_owned();
    let router = Router::start().await;
    let api = router.api();

    // `/moved` answers 307 to `/mcp` on the same origin: followed, and kept.
    api.add(
        json!({"name": "moved", "runtime": {"kind": "remote", "url": format!("{base}/moved")}}),
    )
    .await;
    api.wait_state("moved", "running").await;
    let client = connect_http(&router.mcp_url("/mcp/p/moved")).await.unwrap();
    assert_eq!(
        client
            .call_tool_text("echo", json!({"text": "via a redirect"}))
            .await
            .unwrap(),
        "via a redirect"
    );
    assert!(
        router
            .proc
            .log()
            .contains("the upstream redirected; following"),
        "the redirect is logged"
    );

    // `/moved-away` answers 307 to another origin: the configured headers (credentials)
    // must not follow it there, so the server fails with an error that says why.
    api.add(json!({"name": "away", "runtime": {"kind": "remote", "url": format!("{base}/moved-away"), "headers": {"Authorization": "Bearer secret"}}}))
        .await;
    let error = api.wait_last_error("away", "a last error").await;
    assert!(
        error.contains("redirected to \"http://example.invalid/mcp\"")
            && error.contains("leaves the server's origin"),
        "{error}"
    );
}

/// A real, minimal HTTP `CONNECT` proxy: it records each tunnel's target and then copies
/// bytes both ways.
async fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let tunnels = Arc::new(Mutex::new(Vec::new()));
    let seen = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = head
                    .lines()
                    .next()
                    .and_then(|line| line.strip_prefix("CONNECT "))
                    .and_then(|rest| rest.split(' ').next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                seen.lock().unwrap().push(target.to_owned());
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, tunnels)
}

#[tokio::test]
async fn remote_upstreams_go_through_the_environments_proxy() {
    let fixture = HttpFixture::start("proxied", &[]).await;
    let (proxy_port, tunnels) = connect_proxy().await;
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let router = Router::start_with(&[], &[("HTTP_PROXY", &proxy), ("NO_PROXY", "")]).await;
    let api = router.api();
    api.add(json!({"name": "proxied", "runtime": {"kind": "remote", "url": fixture.url}}))
        .await;
    api.wait_state("proxied", "running").await;
    let client = connect_http(&router.mcp_url("/mcp/p/proxied"))
        .await
        .unwrap();
    assert_eq!(
        client
            .call_tool_text("echo", json!({"text": "through the proxy"}))
            .await
            .unwrap(),
        "through the proxy"
    );
    let target = fixture
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp");
    let seen = tunnels.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|t| t == target),
        "every upstream connection is tunnelled to {target}: {seen:?}"
    );

    // NO_PROXY exempts a host: the same upstream, reached directly. The first router is
    // stopped first, so that no connection of its own can be counted.
    drop(client);
    router.stop();
    let direct =
        Router::start_with(&[], &[("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1")]).await;
    let before = tunnels.lock().unwrap().len();
    direct
        .api()
        .add(json!({"name": "proxied", "runtime": {"kind": "remote", "url": fixture.url}}))
        .await;
    direct.api().wait_state("proxied", "running").await;
    let client = connect_http(&direct.mcp_url("/mcp/p/proxied"))
        .await
        .unwrap();
    wait_for("a call without the proxy", Duration::from_secs(10), || {
        let client = &client;
        async move {
            client
                .call_tool_text("echo", json!({"text": "x"}))
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(
        tunnels.lock().unwrap().len(),
        before,
        "NO_PROXY is honoured"
    );
}

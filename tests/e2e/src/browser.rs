//! Headless Chromium driven over W3C WebDriver (plain JSON over HTTP to `chromedriver`), for
//! the web UI's browser tests. `scripts/browser` installs both from Debian's packages; without
//! them a test skips loudly, unless `MCPR_REQUIRE_ALL=1`. Screenshots land in
//! `target/ui-screenshots/` as test artifacts.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::harness::{Proc, free_port, workspace_root};

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One Chromium session behind its own chromedriver; both end when this drops.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Proc,
}

/// Where screenshots go: `target/ui-screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let dir = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
    dir
}

fn chromedriver() -> Option<PathBuf> {
    let found = ["chromedriver", "/usr/bin/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        if std::env::var("MCPR_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("MCPR_REQUIRE_ALL=1 but chromedriver is missing: run scripts/browser");
        }
        eprintln!(
            "\n!!! SKIPPING browser test: chromedriver is missing (scripts/browser installs chromium and chromium-driver) !!!\n"
        );
    }
    found
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width` × `height` CSS pixels;
    /// `None` (with a loud message) when chromedriver is missing and not required.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let driver_bin = chromedriver()?;
        let port = free_port();
        let mut command = Command::new(driver_bin);
        command.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", command);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer /status within 20 s:\n{}",
                driver.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
            ]},
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("chromedriver: new session")
            .json()
            .await
            .expect("chromedriver: new session answer");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {answer}"))
            .to_owned();
        let browser = Browser {
            http,
            session: format!("{base}/session/{id}"),
            driver,
        };
        browser.resize(width, height).await;
        Some(browser)
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "webdriver {method} {path}: {status} {answer}"
        );
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await
    }

    /// Sets the viewport (the window is sized so that the page gets `width` CSS pixels).
    pub async fn resize(&self, width: u32, height: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    /// A Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub async fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// Loads `url`. Chromium aborts a load in flight with `net::ERR_NETWORK_CHANGED` when the
    /// host's network interfaces change, which other tests do (every Docker network they
    /// create adds one): that says nothing of the page under test, so such a load is made
    /// again, a few times at most; any other failure fails at once.
    pub async fn goto(&self, url: &str) {
        for _ in 0..3 {
            let response = self
                .http
                .post(format!("{}/url", self.session))
                .json(&json!({ "url": url }))
                .send()
                .await
                .unwrap_or_else(|e| panic!("webdriver POST /url: {e}"));
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return;
            }
            assert!(
                answer.to_string().contains("ERR_NETWORK_CHANGED"),
                "webdriver POST /url {url}: {status} {answer}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("loading {url}: the host's network kept changing (ERR_NETWORK_CHANGED)");
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns what it returns.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Polls `script` until it returns something truthy (not null, false, 0 or ""), for at
    /// most `timeout`; panics naming `what` and the page's text otherwise.
    pub async fn wait(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, json!([])).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let text = self.js("return document.body.innerText", json!([])).await;
                panic!(
                    "browser: timed out after {timeout:?} waiting for {what}; the page says:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The first element matching a CSS selector (panics when there is none).
    pub async fn find(&self, css: &str) -> String {
        let value = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element matches {css:?}: {value}"))
            .to_owned()
    }

    /// Clicks the element as a user would (WebDriver element click: scrolled into view,
    /// refused when something covers it).
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Types `text` into the element (WebDriver send keys: focus, then key events).
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    /// Clears an input or textarea.
    pub async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
    }

    /// Presses and releases one key at whatever has focus (WebDriver key actions: real key
    /// events, so Tab moves focus as a user's would). `key` is a character or a WebDriver
    /// key code such as `"\u{E004}"` (Tab), `"\u{E007}"` (Enter), `"\u{E00C}"` (Escape).
    pub async fn press(&self, key: &str) {
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key},
            ]}]}),
        )
        .await;
    }

    /// Accepts the open `confirm()` dialog.
    pub async fn accept_alert(&self) {
        self.post("/alert/accept", json!({})).await;
    }

    /// Saves a PNG of the whole page as `target/ui-screenshots/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// chromedriver's own log (for a failing test's message).
    pub fn driver_log(&self) -> String {
        self.driver.log()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; chromedriver itself is killed with its `Proc`.
        let url = self.session.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let _ = reqwest::Client::new()
                        .delete(url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                });
            }
        })
        .join();
    }
}

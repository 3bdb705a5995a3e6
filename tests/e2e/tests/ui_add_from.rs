//! "Add from URL" and the MCP Registry search in the web UI (`#/add`,
//! `control-plane/ui/addfrom.js`), in a real browser (headless Chromium over WebDriver)
//! against `mcpr up`: repositories of public MCP server layouts served by a real
//! `git daemon` (nothing usable, said with what was looked at; a monorepo to pick from; a
//! server.json with a secret, saved with its source), and a loopback stand-in of the
//! registry API whose entry carries markup in its texts (shown as text, never run); the
//! registry's remote server is saved from the form, runs, and is called by the official MCP
//! Python SDK. Screenshots `add-from-*` at 1280 and 390 px in `target/ui-screenshots/`.

use std::time::Duration;

use mcpr_e2e::browser::Browser;
use mcpr_e2e::harness::{HttpFixture, Router, python, run_python};
use mcpr_e2e::repos::{GitServer, RegistryStandIn, data_repos};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Replaces an input's text as a person does: cleared, then typed.
async fn fill(browser: &Browser, css: &str, text: &str) {
    browser.clear(css).await;
    browser.type_into(css, text).await;
}

/// A browser on the router's "Add from URL" form (`None`: no browser here, the test skips).
async fn open_add_from(router: &Router) -> Option<Browser> {
    let browser = Browser::start(1280, 1000).await?;
    browser.goto(&format!("{}/#/add/url", router.url())).await;
    browser
        .wait(
            "the add-from form",
            "return document.getElementById('u-url') && !document.getElementById('add').hidden",
            WAIT,
        )
        .await;
    Some(browser)
}

async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .js(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn value_of(browser: &Browser, css: &str) -> Value {
    browser
        .js(
            "const e = document.querySelector(arguments[0]); return e ? e.value : null",
            json!([css]),
        )
        .await
}

/// Whether the page scrolls sideways (something wider than the viewport).
async fn overflows(browser: &Browser) -> bool {
    browser
        .js(
            "return document.documentElement.scrollWidth > window.innerWidth + 1",
            json!([]),
        )
        .await
        == json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_from_a_repository_and_the_registry_in_the_browser() {
    let git = GitServer::start().await;
    let fixture = HttpFixture::start("weather", &[]).await;
    let notion: Value = serde_json::from_str(
        &std::fs::read_to_string(data_repos().join("npm-server-json/server.json")).unwrap(),
    )
    .unwrap();
    // Registry texts are untrusted: markup in them must show as text and never run.
    let documents = vec![
        notion,
        json!({"name": "com.example/weather", "title": "Weather <b>hosted</b>",
               "description": "Forecasts <img src=x onerror=\"window.pwned=1\">",
               "version": "1.1.0",
               "remotes": [{"type": "streamable-http", "url": fixture.url}]}),
    ];
    let registry = RegistryStandIn::start(documents).await;
    let router = Router::start_with(&[], &[("MCPR_REGISTRY_URL", &registry.url)]).await;
    let api = router.api();
    let Some(browser) = open_add_from(&router).await else {
        return;
    };

    // Nothing to run: said plainly, with every file looked at and what came of it.
    fill(&browser, "#u-url", &git.url("nothing-usable")).await;
    browser.click("#u-analyze").await;
    browser
        .wait(
            "the miss",
            "const e = document.getElementById('u-error'); return !e.hidden && e.innerText",
            WAIT,
        )
        .await;
    let miss = text_of(&browser, "#u-error").await;
    assert!(
        miss.starts_with("found no way to run this")
            && miss.contains("README.md: no mcpServers block")
            && miss.contains("server.json: not found"),
        "{miss}"
    );

    // A monorepo: six servers to pick from, each with its file and confidence.
    fill(&browser, "#u-url", &git.url("servers-monorepo")).await;
    browser.click("#u-analyze").await;
    browser
        .wait(
            "six servers to pick from",
            "return document.querySelectorAll('#u-picks input[name=u-pick]').length === 6",
            WAIT,
        )
        .await;
    assert!(
        browser
            .js(
                "return document.getElementById('u-error').hidden",
                json!([])
            )
            .await
            == json!(true)
    );
    let picks = text_of(&browser, "#u-picks").await;
    assert!(
        picks.contains("time") && picks.contains("src/time/pyproject.toml"),
        "{picks}"
    );
    browser.click("#u-picks label:nth-of-type(6) input").await;
    browser
        .wait(
            "the time proposal",
            "return document.getElementById('p-name') && document.getElementById('p-name').value === 'time'",
            WAIT,
        )
        .await;
    // Served over git://, which uv cannot install from: the form says so.
    let warnings = text_of(&browser, "#p-warnings").await;
    assert!(
        warnings.contains("uv cannot install from git:// URLs"),
        "{warnings}"
    );
    let looked = text_of(&browser, "#u-looked").await;
    assert!(looked.contains("What was looked at"), "{looked}");
    browser.screenshot("add-from-pick").await;
    assert!(
        !overflows(&browser).await,
        "the page scrolls sideways at 1280 px"
    );

    // server.json with a secret: a password input, required, refused empty; saved with its
    // source; the server appears in the list, live.
    fill(&browser, "#u-url", &git.url("npm-server-json")).await;
    browser.click("#u-analyze").await;
    browser
        .wait(
            "the notion proposal",
            "return document.getElementById('p-name') && document.getElementById('p-name').value === 'notion'",
            WAIT,
        )
        .await;
    let secret = "input[data-var=\"NOTION_TOKEN\"]";
    assert_eq!(
        browser
            .js(
                "return document.querySelector(arguments[0]).type",
                json!([secret])
            )
            .await,
        "password"
    );
    let marks = text_of(&browser, "[data-variable=\"NOTION_TOKEN\"]").await;
    assert!(
        marks.contains("required") && marks.contains("secret"),
        "{marks}"
    );
    let summary = text_of(&browser, "#p-summary").await;
    assert!(
        summary.contains("server.json") && summary.contains("confidence 99%"),
        "{summary}"
    );
    let command = value_of(&browser, "#p-command").await;
    assert!(
        command
            .as_str()
            .unwrap()
            .starts_with("npx -y @notionhq/notion-mcp-server"),
        "{command}"
    );
    browser.click("#p-enabled").await;
    browser.click("#p-save").await;
    browser
        .wait(
            "the required secret refused empty",
            "const e = document.querySelector('[data-var-error=\"NOTION_TOKEN\"]'); return e && e.textContent",
            WAIT,
        )
        .await;
    let (status, _) = api.get("/api/v1/servers/notion").await;
    assert_eq!(
        status, 404,
        "nothing saved while a required value is missing"
    );
    browser.type_into(secret, "ntn_typed_in_the_browser").await;
    browser.click("#p-save").await;
    browser
        .wait(
            "the saved server's details",
            "return location.hash === '#/servers/notion' && !document.getElementById('details').hidden",
            WAIT,
        )
        .await;
    browser
        .wait(
            "the new server in the list, live",
            "return document.querySelector('#servers tr[data-server=\"notion\"]')",
            WAIT,
        )
        .await;
    let server = api.server("notion").await;
    assert_eq!(
        server["runtime"]["env"]["NOTION_TOKEN"], "********",
        "{server}"
    );
    assert_eq!(server["source"]["kind"], "repository", "{server}");
    assert_eq!(
        server["source"]["url"],
        git.url("npm-server-json"),
        "{server}"
    );
    assert_eq!(
        server["source"]["commit"],
        git.commits["npm-server-json"].as_str()
    );
    assert_eq!(server["description"], "Official Notion MCP Server");
    assert!(!router.proc.log().contains("ntn_typed_in_the_browser"));

    // The registry: search, review, save; the markup in its texts stays text.
    browser
        .goto(&format!("{}/#/add/registry", router.url()))
        .await;
    browser
        .wait(
            "the registry search",
            "return document.getElementById('r-query') && !document.getElementById('add').hidden",
            WAIT,
        )
        .await;
    fill(&browser, "#r-query", "weather").await;
    browser.click("#r-search").await;
    browser
        .wait(
            "the weather entry",
            "return document.querySelector('#r-results li[data-entry=\"com.example/weather\"]')",
            WAIT,
        )
        .await;
    let entry = text_of(
        &browser,
        "#r-results li[data-entry=\"com.example/weather\"]",
    )
    .await;
    assert!(
        entry.contains("Weather <b>hosted</b>")
            && entry.contains("Forecasts <img src=x onerror=\"window.pwned=1\">")
            && entry.contains("v1.1.0")
            && entry.contains(&format!("remote:{}", fixture.url)),
        "{entry}"
    );
    assert_eq!(
        browser
            .js(
                "return [document.querySelectorAll('#r-results img, #r-results b').length, typeof window.pwned]",
                json!([])
            )
            .await,
        json!([0, "undefined"])
    );
    browser.screenshot("add-from-registry").await;
    browser
        .click("#r-results button[data-use=\"com.example/weather\"]")
        .await;
    browser
        .wait(
            "the weather proposal",
            "return document.getElementById('p-kind') && document.getElementById('p-kind').value === 'remote'",
            WAIT,
        )
        .await;
    assert_eq!(value_of(&browser, "#p-url").await, fixture.url.as_str());
    fill(&browser, "#p-name", "weather").await;
    browser.resize(390, 900).await;
    browser.screenshot("add-from-390").await;
    assert!(
        !overflows(&browser).await,
        "the page scrolls sideways at 390 px"
    );
    browser.resize(1280, 1000).await;
    browser.click("#p-save").await;
    browser
        .wait(
            "the weather server running, live in its details",
            "return location.hash === '#/servers/weather' && document.querySelector('#d-info .state-running')",
            WAIT,
        )
        .await;
    let server = api.server("weather").await;
    assert_eq!(server["source"]["kind"], "registry", "{server}");
    assert_eq!(server["source"]["entry"], "com.example/weather", "{server}");
    assert_eq!(server["source"]["version"], "1.1.0", "{server}");
    browser.screenshot("add-from-saved").await;

    // A real MCP client reaches the server added from the UI.
    if python().is_none() {
        return;
    }
    let out = run_python(
        "call_tool.py",
        &[
            &router.mcp_url("/mcp/p/weather"),
            "echo",
            r#"{"text": "added from the browser"}"#,
        ],
    )
    .await
    .unwrap();
    let observed: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        observed["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("echo")),
        "{observed}"
    );
    assert_eq!(
        observed["call"]["texts"],
        json!(["added from the browser"]),
        "{observed}"
    );
}

/// A repository with only a Dockerfile, added from the form: it says that saving builds the
/// image from the repository's Dockerfile on the agent, and the saved server keeps the
/// `build` (the repository at the analyzed commit). Saved stopped, so nothing is built here
/// (the layout's `FROM` is a registry image).
#[tokio::test]
async fn a_dockerfile_repository_is_saved_with_its_build_from_the_form() {
    let git = GitServer::start().await;
    let router = Router::start().await;
    let api = router.api();
    let Some(browser) = open_add_from(&router).await else {
        return;
    };
    let url = git.url("dockerfile-only");
    let commit = &git.commits["dockerfile-only"];
    fill(&browser, "#u-url", &url).await;
    browser.click("#u-analyze").await;
    browser
        .wait(
            "the Dockerfile proposal",
            "return document.getElementById('p-name') && document.getElementById('p-name').value === 'dockerfile-only'",
            WAIT,
        )
        .await;
    let note = text_of(&browser, "#p-build").await;
    let image = format!("mcpr-build/dockerfile-only:{}", &commit[..12]);
    assert!(
        note.contains(&format!("Saving builds the image {image}"))
            && note.contains("its steps run in Docker's builder then, not before"),
        "{note}"
    );
    browser.click("#p-enabled").await;
    browser.click("#p-save").await;
    browser
        .wait(
            "the saved server's details",
            "return location.hash === '#/servers/dockerfile-only' && !document.getElementById('details').hidden",
            WAIT,
        )
        .await;
    let server = api.server("dockerfile-only").await;
    assert_eq!(server["runtime"]["image"], image.as_str(), "{server}");
    assert_eq!(
        server["runtime"]["build"],
        json!({"git": url, "ref": commit, "dockerfile": "Dockerfile"}),
        "{server}"
    );
    assert_eq!(server["enabled"], false, "{server}");
}

//! `python_sandbox(code, libraries)` against the real Docker Engine and the real PyPI: the
//! libraries are installed into an image built once per set (`mcpr-sandbox-libs:HASH`, the
//! build being the only step with network), and the code runs in it, offline. Slow (each
//! test builds an image from PyPI): `.config/nextest.toml` gives this binary more time.
//!
//! Each test uses a set of its own and removes that set's image first, so the build really
//! runs here, and tests running side by side never share (or delete) each other's images.
//! Also here, being a PyPI build too: `mcpr server add --wait` showing a `uvx` image build.

use std::process::Command;

use mcpr_e2e::harness::{DockerCleanup, RawMcp, Router, docker_owner, docker_ready};
use serde_json::{Value, json};

/// The label a sandbox image carries: its libraries.
const LIBRARIES: &str = "mcp-router.sandbox-libraries";

async fn router(owner: &str) -> Router {
    Router::start_with(
        &[],
        &[("MCPR_DOCKER_OWNER", owner), ("MCPR_SANDBOX_POOL", "0")],
    )
    .await
}

/// `(id, created)` of each image built for exactly `libraries` (the label's value).
fn library_images(libraries: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CreatedAt}} {{.Repository}}:{{.Tag}}",
            "--filter",
            &format!("label={LIBRARIES}={libraries}"),
        ])
        .output()
        .expect("docker images");
    assert!(output.status.success(), "docker images failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes this test's own sandbox image (from an earlier run), so the build runs now.
fn forget_library_images(libraries: &str) {
    for line in library_images(libraries) {
        let id = line.split(' ').next().unwrap().to_owned();
        let removed = Command::new("docker")
            .args(["rmi", "-f", &id])
            .output()
            .expect("docker rmi");
        assert!(removed.status.success(), "docker rmi {id}: {removed:?}");
    }
}

async fn run(mcp: &mut RawMcp, code: &str, libraries: Value) -> Value {
    mcp.call(
        "python_sandbox",
        json!({"code": code, "libraries": libraries}),
    )
    .await
    .unwrap_or_else(|e| panic!("python_sandbox: {e}"))
}

/// How often the router's log says it built the sandbox image for `libraries`.
fn builds_logged(router: &Router, libraries: &str) -> usize {
    router
        .proc
        .log()
        .matches(&format!("for python_sandbox libraries {libraries} (once"))
        .count()
}

#[tokio::test]
async fn libraries_are_installed_once_per_set_and_imported_offline() {
    if !docker_ready() {
        return;
    }
    forget_library_images("six");
    let owner = docker_owner("libs");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner).await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;

    // The tool's schema offers `libraries`.
    let tools = mcp.request("tools/list", json!({})).await;
    let tool = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "python_sandbox")
        .cloned()
        .unwrap_or_else(|| panic!("python_sandbox listed: {tools}"));
    assert_eq!(
        tool["inputSchema"]["properties"]["libraries"]["type"], "array",
        "{tool}"
    );

    // Imported and used; the container itself still has no network.
    let code = "import socket, six\n\
                try:\n    socket.create_connection(('pypi.org', 443), timeout=3); net = 'online'\n\
                except OSError:\n    net = 'offline'\n\
                print(six.moves.reduce(lambda a, b: a * b, [6, 7]), net)";
    let first = run(&mut mcp, code, json!(["six"])).await;
    assert_ne!(first["isError"], true, "{first}");
    assert_eq!(first["structuredContent"]["exit_code"], 0, "{first}");
    assert_eq!(
        first["structuredContent"]["stdout"], "42 offline\n",
        "{first}"
    );
    let built = library_images("six");
    assert_eq!(built.len(), 1, "one image for the set: {built:?}");
    assert!(built[0].contains("mcpr-sandbox-libs:"), "{built:?}");
    assert_eq!(builds_logged(&router, "six"), 1, "{}", router.proc.log());

    // The same set, spelled otherwise: the same image, not built again.
    let second = run(
        &mut mcp,
        "import six; print(six.PY3)",
        json!(["Six", "six"]),
    )
    .await;
    assert_eq!(second["structuredContent"]["stdout"], "True\n", "{second}");
    assert_eq!(library_images("six"), built, "no rebuild");
    assert_eq!(builds_logged(&router, "six"), 1, "no rebuild");

    // Without `libraries`, the base image: the package is not there.
    let plain = run(&mut mcp, "import six", Value::Null).await;
    assert_eq!(plain["structuredContent"]["exit_code"], 1, "{plain}");
    assert!(
        plain["structuredContent"]["stderr"]
            .as_str()
            .unwrap()
            .contains("ModuleNotFoundError"),
        "{plain}"
    );
}

#[tokio::test]
async fn bad_and_unknown_libraries_get_clear_errors() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("badlibs");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner).await;
    let mut mcp = RawMcp::new(&router.mcp_url("/mcp"));
    mcp.initialize().await;
    let text = |result: &Value| result["content"][0]["text"].as_str().unwrap().to_owned();

    let bad = run(&mut mcp, "print(1)", json!(["six", "not a package!"])).await;
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(text(&bad).contains("\"not a package!\""), "{bad}");
    assert!(text(&bad).contains("NAME==VERSION"), "{bad}");

    let too_many: Vec<String> = (0..21).map(|i| format!("pkg{i}")).collect();
    let many = run(&mut mcp, "print(1)", json!(too_many)).await;
    assert_eq!(many["isError"], true, "{many}");
    assert!(text(&many).contains("at most 20"), "{many}");

    // A name PyPI does not know: pip's own verdict, summarised.
    let missing = "mcpr-e2e-no-such-package-3f9c1b";
    let unknown = run(&mut mcp, "print(1)", json!([missing])).await;
    assert_eq!(unknown["isError"], true, "{unknown}");
    let message = text(&unknown);
    assert!(
        message.contains(&format!("cannot install libraries {missing}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("No matching distribution found for {missing}")),
        "{message}"
    );
    assert!(
        library_images(missing).is_empty(),
        "no image for a failed set"
    );
}

#[tokio::test]
async fn concurrent_calls_with_one_set_build_it_once() {
    if !docker_ready() {
        return;
    }
    forget_library_images("idna");
    let owner = docker_owner("libsrace");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner).await;
    let url = router.mcp_url("/mcp");
    let calls = (0..3).map(|i| {
        let url = url.clone();
        async move {
            let mut mcp = RawMcp::new(&url);
            mcp.initialize().await;
            let code = format!("import idna; print({i}, idna.encode('bücher.example').decode())");
            run(&mut mcp, &code, json!(["idna"])).await
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(
            result["structuredContent"]["stdout"],
            format!("{i} xn--bcher-kva.example\n"),
            "{result}"
        );
    }
    assert_eq!(library_images("idna").len(), 1);
    assert_eq!(builds_logged(&router, "idna"), 1, "{}", router.proc.log());
}

/// `--wait` prints the image build's steps as they happen and ends with the server's fate.
/// The package spec is unique to this run (an always-true `!=` clause), so the build really
/// runs; `six` has no entry point named `six`, so the server fails once built.
#[tokio::test]
async fn server_add_wait_prints_the_build_progress_and_the_outcome() {
    if !docker_ready() {
        return;
    }
    let owner = docker_owner("waitbuild");
    let _cleanup = DockerCleanup(owner.clone());
    let router = router(&owner).await;
    let unique = format!("{}{}", std::process::id(), mcpr_e2e::harness::free_port());
    let package = format!("six!=0.0.{unique}");
    // The tag's readable part: the spec with every other character as '-'.
    let built = format!("mcpr/uvx-six--0-0-{unique}");
    let built_tag = format!("{built}:");
    let _remove = RemoveImages(built.clone());
    let output = Command::new(mcpr_e2e::harness::bin("mcpr"))
        .arg("--url")
        .arg(router.url())
        .args(["server", "add", "sixserver", "--uvx", &package, "--wait"])
        .env_remove("MCPR_URL")
        .output()
        .expect("run mcpr");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        stdout.contains(&format!("building image {built_tag}")) && stdout.contains(": Step "),
        "progress printed while waiting: {stdout}"
    );
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains("server \"sixserver\" failed to start"),
        "{stderr}"
    );
    let (status, body) = router
        .api()
        .call(reqwest::Method::DELETE, "/api/v1/servers/sixserver", None)
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    assert!(
        image_tags(&built).iter().any(|t| t.starts_with(&built_tag)),
        "the built image is tagged {built_tag}…"
    );
}

/// Tags of the images whose repository is `repository`.
fn image_tags(repository: &str) -> Vec<String> {
    let images = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .args(["--filter", &format!("reference={repository}")])
        .output()
        .expect("docker images");
    String::from_utf8_lossy(&images.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Removes the images of a repository this test made, also when it fails.
struct RemoveImages(String);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for tag in image_tags(&self.0) {
            let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
        }
    }
}

//! Compiles `proto/mcpr.proto` with a vendored `protoc`, so cargo alone builds the workspace.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe_set_protoc(&protoc);
    println!("cargo:rerun-if-changed=proto/mcpr.proto");
    tonic_prost_build::configure().compile_protos(&["proto/mcpr.proto"], &["proto"])?;
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_set_protoc(path: &std::path::Path) {
    // `set_var` is unsafe in edition 2024 because other threads may read the environment;
    // a build script has no other threads at this point.
    unsafe { std::env::set_var("PROTOC", path) };
}

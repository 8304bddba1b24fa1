//! Generates the gRPC service and message code from `proto/*.proto`
//! with the protoc that `protoc-bin-vendored` ships, so a build needs no
//! protoc installed and nothing beyond crates.io.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a build
    // script binary reused from another checkout must still read this one's
    // protos.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let proto_dir = std::path::Path::new(&manifest_dir).join("../../proto");
    let protos = ["hyperraft.proto", "agent.proto", "bus.proto", "decision.proto"].map(|name| proto_dir.join(name));
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `bytes::Bytes` for every bytes field: a packed frame is then a view
    // of the received buffer, not a copy.
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(config, &protos, &[proto_dir])?;
    Ok(())
}

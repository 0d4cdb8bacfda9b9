//! Compiles `proto/` with protox (pure Rust), so a fresh machine needs no `protoc`.
//! The compiled descriptor set is also written to OUT_DIR: the contract test compares it
//! with the descriptors of the published Python packages.

use std::path::PathBuf;

use prost::Message;

const PROTO_FILES: &[&str] = &[
    "chaukas/spec/common/v1/events.proto",
    "chaukas/spec/common/v1/query.proto",
    "chaukas/spec/server/v1/server.proto",
    "chaukas/spec/client/v1/client.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let descriptors = protox::compile(PROTO_FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("chaukas_descriptor.binpb"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Our codec: decode errors are INVALID_ARGUMENT, batches are counted before decoding.
        .codec_path("crate::codec::GuardedCodec")
        .compile_fds(descriptors)?;

    // Internal services: compiled apart, so the descriptor set above stays exactly the
    // public contract.
    let internal = protox::compile(
        [
            "chaukas/internal/v1/audit_log.proto",
            "chaukas/internal/v1/sessions.proto",
        ],
        [&proto_root],
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::GuardedCodec")
        .compile_fds(internal)?;
    Ok(())
}

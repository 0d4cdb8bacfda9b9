//! The content hash is reproducible by third parties (issue #14): for every one of the 19
//! event types of the corpus, our canonical encoding (what the hash covers) is byte for
//! byte what the published Python protobuf runtime's `SerializeToString(deterministic=True)`
//! produces, and the hashes agree.
//!
//! Runs the Python of the throwaway virtualenv `make test` builds from the published
//! packages (`CHAUKAS_CONTRACT_PYTHON`, default `target/contract/venv/bin/python`).

use std::io::Write;
use std::process::{Command, Stdio};

use chaukas_audit::content::content_hash;
use chaukas_audit::hash::to_hex;
use chaukas_tests::corpus::every_kind_of_event;
use prost::Message;

#[test]
fn content_hashes_match_protobufs_deterministic_serialization() {
    let python = std::env::var("CHAUKAS_CONTRACT_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/../target/contract/venv/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let script = format!("{}/contract/deterministic.py", env!("CARGO_MANIFEST_DIR"));
    let mut events = every_kind_of_event("acme");
    assert_eq!(events.len(), 19, "one event of each type");
    let input: String = events
        .iter()
        .map(|event| format!("{}\n", to_hex(&event.encode_to_vec())))
        .collect();
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {python} ({error}); `make test` creates it, or run \
                 `make contract-descriptors` once"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "deterministic.py failed");
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), events.len());
    for (event, line) in events.iter_mut().zip(lines) {
        let (python_bytes, python_hash) = line.split_once(' ').unwrap();
        assert_eq!(
            to_hex(&event.encode_to_vec()),
            python_bytes,
            "event {} ({:?}) encodes differently",
            event.event_id,
            event.r#type
        );
        assert_eq!(to_hex(&content_hash(event)), python_hash);
    }
}

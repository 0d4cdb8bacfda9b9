//! The content hash is reproducible by third parties (issue #14): for every one of the 19
//! event types of the corpus, our canonical encoding (what the hash covers) is byte for
//! byte what the published Python protobuf runtime's `SerializeToString(deterministic=True)`
//! produces, and the hashes agree.
//!
//! Runs the Python of the throwaway virtualenv `make test` builds from the published
//! packages (`CHAUKAS_CONTRACT_PYTHON`, default `target/contract/venv/bin/python`).

use chaukas_audit::content::content_hash;
use chaukas_audit::hash::to_hex;
use chaukas_tests::corpus::every_kind_of_event;
use chaukas_tests::run_contract_script;
use prost::Message;

#[test]
fn content_hashes_match_protobufs_deterministic_serialization() {
    let mut events = every_kind_of_event("acme");
    assert_eq!(events.len(), 19, "one event of each type");
    let input: String = events
        .iter()
        .map(|event| format!("{}\n", to_hex(&event.encode_to_vec())))
        .collect();
    let output = run_contract_script("deterministic.py", &[], input.as_bytes());
    assert!(output.success, "deterministic.py failed: {}", output.stderr);
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

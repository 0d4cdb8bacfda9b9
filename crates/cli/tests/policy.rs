//! `chaukas policy set|show` against real NATS (issue #15): a policy round-trips with who
//! set it; a shorter minimum retention, a hold without a reason and a bad pointer are
//! refused with messages that say what to fix; the gateway applies what was set.

use std::io::Write as _;
use std::time::{Duration, Instant};

use chaukas_proto::common::v1::{MessageContent, event::Content};
use chaukas_proto::server::v1 as server;
use chaukas_tests::corpus::simple_event;
use chaukas_tests::{Pipeline, nats_env};

/// Runs `chaukas policy <args>` with `policy` on standard input; (success, stdout+stderr).
fn policy(pipeline: &Pipeline, args: &[&str], file: Option<&str>) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chaukas"));
    command
        .arg("policy")
        .args(args)
        .envs(nats_env(&pipeline.nats))
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if file.is_some() {
        command.args(["--file", "-"]);
    }
    let mut child = command.spawn().expect("chaukas policy runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(file.unwrap_or("").as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn set_show_and_the_refusals() {
    let pipeline = Pipeline::start_custom(None, false, |_, _| {}).await;
    let set = |file: &str| {
        policy(
            &pipeline,
            &["set", "--tenant", "acme", "--by", "ops@acme"],
            Some(file),
        )
    };
    let (ok, out) = set(
        r#"{"retention": {"min_days": 2190, "max_days": 2555, "legal_hold": true, "hold_reason": "case 114"},
            "redaction": {"rules": [{"path": "/message/text", "method": "mask"}],
                          "detectors": {"email": "hash"}}}"#,
    );
    assert!(ok, "{out}");
    let (ok, shown) = policy(&pipeline, &["show", "--tenant", "acme"], None);
    assert!(ok, "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["policy"]["retention"]["min_days"], 2190);
    assert_eq!(shown["policy"]["retention"]["hold_set_by"], "ops@acme");
    assert_eq!(shown["set_by"], "ops@acme");
    assert!(
        shown["salt_id"].as_str().unwrap().starts_with("hmac-"),
        "{shown}"
    );
    assert!(
        !shown.to_string().contains("secret"),
        "the secret is never shown"
    );

    for (file, expected) in [
        (r#"{"retention": {"min_days": 30}}"#, "can only be raised"),
        (r#"{"redaction": {"rules": []}}"#, "without retention"),
        (
            r#"{"retention": {"min_days": 3000, "legal_hold": true}}"#,
            "needs a reason",
        ),
        (
            r#"{"retention": {"min_days": 3000}, "redaction": {"rules": [{"path": "/event_id", "method": "mask"}]}}"#,
            "cannot be redacted",
        ),
        ("not json", "not a policy file"),
    ] {
        let (ok, out) = set(file);
        assert!(!ok, "{file} was accepted");
        assert!(out.contains(expected), "{file}: {out}");
    }
    let (ok, out) = set(r#"{"retention": {"min_days": 3000}}"#);
    assert!(ok, "raising is allowed and lifting the hold too: {out}");
    let (ok, out) = policy(&pipeline, &["show", "--tenant", "nobody"], None);
    assert!(!ok && out.contains("no policy stored"), "{out}");
    pipeline.stop().await;
}

#[tokio::test]
async fn a_policy_set_with_the_cli_applies_to_the_next_events() {
    let pipeline = Pipeline::start().await;
    let (ok, out) = policy(
        &pipeline,
        &["set", "--tenant", "acme-cli", "--project", "p"],
        Some(r#"{"redaction": {"detectors": {"email": "mask"}}}"#),
    );
    assert!(ok, "{out}");
    let mut client = pipeline.server_client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        let mut event = simple_event("acme-cli", &format!("e{attempt}"));
        event.content = Some(Content::Message(MessageContent {
            text: "mail jane@example.com".into(),
            ..MessageContent::default()
        }));
        client
            .ingest_event(server::IngestEventRequest { event: Some(event) })
            .await
            .unwrap();
        let stored = pipeline
            .wait_for_rows(attempt + 1, Duration::from_secs(30))
            .await;
        assert_eq!(stored, attempt + 1);
        let masked = pipeline.stored_events().await.into_iter().any(|event| {
            matches!(&event.content, Some(Content::Message(m)) if m.text == "mail [REDACTED:email]")
        });
        if masked {
            break;
        }
        assert!(Instant::now() < deadline, "the policy was not applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pipeline.stop().await;
}

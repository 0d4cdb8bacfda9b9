use super::*;

fn parse(json: &str) -> Result<Policy, PolicyError> {
    Policy::parse(json.as_bytes())
}

#[test]
fn takes_the_documented_file() {
    let policy = parse(
        r#"{"retention": {"min_days": 2190, "max_days": 2555, "legal_hold": false},
            "redaction": {"rules": [{"path": "/llm_invocation/request/messages/*/content", "method": "mask"}],
                          "detectors": {"email": "hash", "payment_card": "mask", "phone": "mask"}}}"#,
    )
    .unwrap();
    assert_eq!(policy.retention.as_ref().unwrap().min_days, 2190);
    assert_eq!(policy.redaction.rules[0].category(), "pii");
    assert_eq!(policy.redaction.detectors[&Detector::Email], Method::Hash);
    assert!(policy.hashes());
}

#[test]
fn refuses_with_a_message_naming_the_problem() {
    let cases = [
        (
            r#"{"retention": {"min_days": 10, "max_days": 5}}"#,
            "retention.max_days",
        ),
        (
            r#"{"retention": {"min_days": 10, "legal_hold": true}}"#,
            "needs a reason",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "/tenant_id", "method": "mask"}]}}"#,
            "routes",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "/llm_invocation/prompt_tokens", "method": "mask"}]}}"#,
            "numbers",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "message/text", "method": "mask"}]}}"#,
            "must start with `/`",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "/*/text", "method": "mask"}]}}"#,
            "not field names",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "/extensions", "method": "mask"}]}}"#,
            "only `drop`",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "/message/text", "method": "blur"}]}}"#,
            "unknown variant",
        ),
        (
            r#"{"redaction": {"detectors": {"dna": "mask"}}}"#,
            "unknown variant",
        ),
        (
            r#"{"retention": {"min_days": 1}, "colour": "red"}"#,
            "unknown field",
        ),
        (
            r#"{"redaction": {"rules": [{"path": "/message/text", "method": "mask", "category": "Bad Name"}]}}"#,
            "category",
        ),
    ];
    for (json, expected) in cases {
        let error = parse(json).unwrap_err().to_string();
        assert!(error.contains(expected), "{json}: {error}");
    }
}

#[test]
fn accepts_pointers_into_structs_lists_and_identifiers() {
    for path in [
        "/metadata/customer/email",
        "/llm_invocation/request/messages/*/content",
        "/tags/*",
        "/policy/rule_ids/0",
        "/session_id",
        "/tool_call/arguments",
        "/extensions",
    ] {
        let json =
            format!(r#"{{"redaction": {{"rules": [{{"path": "{path}", "method": "drop"}}]}}}}"#);
        parse(&json).unwrap_or_else(|error| panic!("{path}: {error}"));
    }
}

#[test]
fn a_minimum_retention_only_grows() {
    let with = |days: u32| Policy {
        retention: Some(Retention {
            min_days: days,
            ..Retention::default()
        }),
        ..Policy::default()
    };
    assert!(Policy::check_change(None, &with(10)).is_ok());
    assert!(Policy::check_change(Some(&with(10)), &with(20)).is_ok());
    let shorter = Policy::check_change(Some(&with(20)), &with(10)).unwrap_err();
    assert!(
        shorter.to_string().contains("can only be raised"),
        "{shorter}"
    );
    let none = Policy::check_change(Some(&with(20)), &Policy::default()).unwrap_err();
    assert!(none.to_string().contains("without retention"), "{none}");
}

#[test]
fn the_stricter_detector_method_wins() {
    assert_eq!(Method::Hash.stricter(Method::Mask), Method::Mask);
    assert_eq!(Method::Drop.stricter(Method::Hash), Method::Drop);
}

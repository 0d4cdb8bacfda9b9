//! `chaukas import`: the JSON Lines chaukas-sdk writes in file mode, into a running pipeline.

use std::time::Duration;

use chaukas_import::{BadLine, ImportOptions, Progress, import};
use chaukas_proto::common::v1::Event;
use chaukas_tests::Pipeline;
use chaukas_tests::corpus::every_kind_of_event;

/// An event as the SDK's file mode writes it: canonical JSON with proto field names and a
/// naive UTC timestamp (`datetime.utcnow().isoformat()`).
fn sdk_line(event: &Event) -> String {
    let mut value = chaukas_json::to_canonical(event).unwrap();
    let timestamp = event.timestamp.expect("corpus events have timestamps");
    value["timestamp"] = naive_utc(timestamp.seconds, timestamp.nanos).into();
    value.to_string()
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` for a Unix time, without a date library.
fn naive_utc(seconds: i64, nanos: i32) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        nanos / 1000
    )
}

fn corpus(tenant: &str, copies: usize) -> Vec<Event> {
    (0..copies)
        .flat_map(|copy| {
            every_kind_of_event(tenant)
                .into_iter()
                .map(move |mut event| {
                    event.event_id = format!("{}-copy-{copy:02}", event.event_id);
                    event
                })
        })
        .collect()
}

fn options(pipeline: &Pipeline) -> ImportOptions {
    ImportOptions {
        batch_events: 64,
        ..ImportOptions::new(format!("http://{}", pipeline.grpc))
    }
}

#[tokio::test]
async fn an_sdk_file_of_hundreds_of_events_imports_completely() {
    let pipeline = Pipeline::start().await;
    let events = corpus("t-import", 20); // 380 events
    let file: String = events.iter().map(|event| sdk_line(event) + "\n").collect();

    let report = import(file.as_bytes(), &options(&pipeline), &mut Progress::quiet())
        .await
        .unwrap();
    assert_eq!(report.accepted, 380, "{report}");
    assert!(report.is_complete(), "{report}");
    assert_eq!(
        pipeline.wait_for_rows(380, Duration::from_secs(30)).await,
        380
    );
    let mut expected = events;
    for event in &mut expected {
        // The naive timestamp keeps microseconds, as the SDK's isoformat() does.
        if let Some(timestamp) = &mut event.timestamp {
            timestamp.nanos -= timestamp.nanos % 1000;
        }
    }
    expected.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(pipeline.stored_events().await, expected);

    // Importing the same file again stores nothing new.
    let again = import(file.as_bytes(), &options(&pipeline), &mut Progress::quiet())
        .await
        .unwrap();
    assert!(again.is_complete(), "{again}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.row_count().await, 380);
    pipeline.stop().await;
}

#[tokio::test]
async fn bad_lines_are_reported_by_number_and_the_good_ones_imported() {
    let pipeline = Pipeline::start().await;
    let events = corpus("t-import-bad", 1);
    let mut lines: Vec<String> = events.iter().map(sdk_line).collect();
    lines.insert(3, "{\"event_id\": \"truncated".into()); // line 4
    lines.insert(7, String::new()); // line 8, blank
    lines.insert(
        10,
        r#"{"event_id": "x", "tenant_id": "t-import-bad", "type": "EVENT_TYPE_TELEPORT"}"#.into(),
    ); // line 11
    lines.insert(
        15,
        r#"{"event_id": "no-tenant", "type": "EVENT_TYPE_ERROR"}"#.into(),
    ); // line 16
    let file = lines.join("\n");

    let report = import(file.as_bytes(), &options(&pipeline), &mut Progress::quiet())
        .await
        .unwrap();
    assert_eq!(report.lines, 23);
    assert_eq!(report.blank_lines, 1);
    assert_eq!(report.accepted, 19, "{report}");
    let lines_and_words: Vec<(u64, &str)> = vec![
        (4, "not valid JSON"),
        (11, "type: unknown EventType \"EVENT_TYPE_TELEPORT\""),
        (16, "tenant_id is required"),
    ];
    assert_eq!(
        report
            .rejected
            .iter()
            .map(|bad| bad.line)
            .collect::<Vec<_>>(),
        lines_and_words
            .iter()
            .map(|(line, _)| *line)
            .collect::<Vec<_>>(),
        "{report}"
    );
    for (BadLine { line, reason }, (_, words)) in report.rejected.iter().zip(&lines_and_words) {
        assert!(
            reason.contains(words),
            "line {line}: {reason:?} should mention {words:?}"
        );
    }
    let summary = report.to_string();
    assert!(
        summary.contains("19 accepted, 3 rejected, 1 blank"),
        "{summary}"
    );
    assert!(
        summary.contains("  line 11: type: unknown EventType"),
        "{summary}"
    );
    assert_eq!(
        pipeline.wait_for_rows(19, Duration::from_secs(30)).await,
        19
    );

    // A tenant given on the command line fills events that have none.
    let fill = ImportOptions {
        tenant: Some("t-filled".into()),
        ..options(&pipeline)
    };
    let report = import(
        r#"{"event_id": "no-tenant", "type": "EVENT_TYPE_ERROR"}"#.as_bytes(),
        &fill,
        &mut Progress::quiet(),
    )
    .await
    .unwrap();
    assert_eq!((report.accepted, report.rejected.len()), (1, 0));
    pipeline.stop().await;
}

#[tokio::test]
async fn no_gateway_is_a_clear_error() {
    let port = chaukas_testkit::free_port();
    let error = import(
        "{}".as_bytes(),
        &ImportOptions::new(format!("http://127.0.0.1:{port}")),
        &mut Progress::quiet(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("cannot reach the gateway at http://127.0.0.1:"),
        "{error}"
    );
}

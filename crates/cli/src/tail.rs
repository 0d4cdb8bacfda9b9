//! `chaukas tail`: follows a tenant's events as they are stored (`GET /v1/tail`, Server-Sent
//! Events), one line per event — time, agent, action, ✓ (completed) / ✗ (failed, cancelled,
//! error) / ~ (anything else), detail — and reconnects after a drop with `Last-Event-ID`, so
//! no event is lost or printed twice.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct TailOptions {
    /// The gateway's HTTP address, `http://host:port`.
    pub url: String,
    /// API key (`CHAUKAS_API_KEY`); none in dev mode.
    pub api_key: String,
    /// Query parameters: tenant, project, session, agent, type.
    pub filters: Vec<(String, String)>,
    /// Start after this message id (leaf) instead of from now.
    pub after: Option<String>,
}

/// Follows until interrupted or refused.
pub async fn follow(options: TailOptions) -> anyhow::Result<()> {
    let mut last_id: Option<String> = options.after.clone();
    loop {
        match stream_once(&options, &mut last_id).await {
            Ok(()) => eprintln!("(the gateway closed the stream; reconnecting)"),
            Err(error) if error.is::<Refused>() => return Err(error),
            Err(error) => eprintln!("({error:#}; reconnecting)"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The gateway said no (a bad filter, a bad key): reconnecting cannot help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

async fn stream_once(options: &TailOptions, last_id: &mut Option<String>) -> anyhow::Result<()> {
    let rest = options
        .url
        .strip_prefix("http://")
        .with_context(|| format!("{:?}: only http:// gateway URLs are supported", options.url))?;
    let authority = rest.trim_end_matches('/');
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&options.filters)
        .finish();
    let mut request = format!(
        "GET /v1/tail?{query} HTTP/1.0\r\nHost: {authority}\r\nAccept: text/event-stream\r\n"
    );
    if !options.api_key.is_empty() {
        request.push_str(&format!("Authorization: Bearer {}\r\n", options.api_key));
    }
    if let Some(id) = last_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.write_all(request.as_bytes()).await?;
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await?.unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or("");
    // Headers end at the first empty line.
    while let Some(line) = lines.next_line().await? {
        if line.is_empty() {
            break;
        }
    }
    if code != "200" {
        let mut body = String::new();
        while let Some(line) = lines.next_line().await? {
            body.push_str(&line);
        }
        if code.starts_with('4') && code != "429" {
            return Err(Refused(format!("the gateway answered {code}: {body}")).into());
        }
        bail!("the gateway answered {code}: {body}");
    }
    let mut message = SseMessage::default();
    while let Some(line) = lines.next_line().await? {
        if !line.is_empty() {
            message.add(&line);
            continue;
        }
        let done = std::mem::take(&mut message);
        if done.event == "error" {
            eprintln!("(the gateway ended the stream: {})", done.data);
            return Ok(());
        }
        if done.data.is_empty() {
            continue;
        }
        println!("{}", line_of(&done.data));
        if !done.id.is_empty() {
            *last_id = Some(done.id);
        }
    }
    Ok(())
}

/// One Server-Sent Events message as its lines arrive.
#[derive(Debug, Default)]
struct SseMessage {
    id: String,
    event: String,
    data: String,
}

impl SseMessage {
    fn add(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = value.to_owned(),
            "event" => self.event = value.to_owned(),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

/// `time  agent  action  mark  detail` for one event (its JSON as the tail sends it).
pub fn line_of(json: &str) -> String {
    let Ok(event) = serde_json::from_str::<Value>(json) else {
        return format!("?  {json}");
    };
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let time = text(&event["timestamp"]);
    let time = time.get(11..23).unwrap_or(&time).to_owned();
    let agent = text(&event["agent_name"]);
    let action = text(&event["type"]);
    let status = text(&event["status"]);
    let mark = if action.ends_with("ERROR") || matches!(status.as_str(), "FAILED" | "CANCELLED") {
        "✗"
    } else if status == "COMPLETED" {
        "✓"
    } else {
        "~"
    };
    let content = &event["content"];
    let detail = [
        "name",
        "model",
        "error_message",
        "method",
        "to_agent_name",
        "text",
    ]
    .iter()
    .map(|field| text(&content[*field]))
    .find(|value| !value.is_empty())
    .unwrap_or_else(|| format!("session {}", text(&event["session_id"])));
    format!("{time:<12}  {agent:<16}  {action:<24}  {mark}  {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_lines_read_as_documented() {
        let mut message = SseMessage::default();
        for line in [": heartbeat", "id: 41", "data: {\"a\":", "data: 1}"] {
            message.add(line);
        }
        assert_eq!(
            (message.id.as_str(), message.data.as_str()),
            ("41", "{\"a\":\n1}")
        );
        let line = line_of(
            r#"{"timestamp":"2025-11-24T16:00:01.250Z","agent_name":"planner","type":"TOOL_CALL_END","status":"FAILED","content":{"kind":"tool_call","name":"search"}}"#,
        );
        assert!(line.starts_with("16:00:01.250"), "{line}");
        assert!(
            line.contains("planner") && line.contains("TOOL_CALL_END"),
            "{line}"
        );
        assert!(line.contains("✗  search"), "{line}");
        let ok = line_of(r#"{"type":"SESSION_END","status":"COMPLETED","session_id":"s1"}"#);
        assert!(ok.contains("✓  session s1"), "{ok}");
    }
}

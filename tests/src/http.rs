//! HTTP from the tests' side: bare HTTP/1.0 requests (enough for every route, without an
//! HTTP client in the workspace) and gzip bodies.

use std::net::SocketAddr;

/// Sends a bare HTTP/1.0 GET and returns (status code, body): enough for health checks
/// without pulling an HTTP client into the workspace.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_request(addr, "GET", path, &[], &[]).await;
    (response.status, response.body)
}

/// An HTTP response, as far as tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code (0: nothing listens).
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// An HTTP/1.0 request; the response with its body as text.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let (status, headers, body) = http_raw(addr, method, path, headers, body).await;
    HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// An HTTP/1.0 request; status (0: nothing listens), lower-cased headers and the raw body.
pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, Vec::new(), Vec::new());
    };
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body)
}

/// `bytes` gzip-compressed, as a client's `Content-Encoding: gzip` body.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A new API key of `tenant` with `scopes`, stored where the pipeline's gateway watches.
pub async fn create_key(
    pipeline: &crate::Pipeline,
    tenant: &str,
    scopes: &[chaukas_auth::Scope],
) -> String {
    create_project_key(pipeline, tenant, None, scopes).await
}

/// A new API key of `tenant`, confined to `project` when given.
pub async fn create_project_key(
    pipeline: &crate::Pipeline,
    tenant: &str,
    project: Option<&str>,
    scopes: &[chaukas_auth::Scope],
) -> String {
    let client = async_nats::connect(&pipeline.nats.url).await.unwrap();
    let keys = chaukas_auth::KeyStore::open(&async_nats::jetstream::new(client), &pipeline.nats)
        .await
        .unwrap();
    keys.create(
        "test".into(),
        tenant.into(),
        project.map(str::to_owned),
        scopes.to_vec(),
        None,
    )
    .await
    .unwrap()
    .token
}

/// GET with API key `token` (none if empty); status and body. Retries 401 briefly (a new
/// key reaches the gateway through its watch).
pub async fn get_with_key(pipeline: &crate::Pipeline, token: &str, path: &str) -> (u16, Vec<u8>) {
    let bearer = format!("Bearer {token}");
    let headers: Vec<(&str, &str)> = match token {
        "" => Vec::new(),
        _ => vec![("Authorization", bearer.as_str())],
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, _, body) = http_raw(pipeline.http, "GET", path, &headers, &[]).await;
        if status != 401 || token.is_empty() || std::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// GET with API key `token`: status and the body as JSON (a JSON string of the body when it
/// is not JSON).
pub async fn get_json(
    pipeline: &crate::Pipeline,
    token: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let (status, body) = get_with_key(pipeline, token, path).await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, value)
}

/// Sends `events` as one gRPC batch with API key `token`; asserts none was rejected.
pub async fn ingest_with_key(
    pipeline: &crate::Pipeline,
    token: &str,
    events: Vec<chaukas_proto::common::v1::Event>,
) {
    let mut client = pipeline.server_client().await;
    // A new key reaches the gateway through its watch: retry UNAUTHENTICATED briefly, as
    // `get_with_key` retries 401 (a refused request stores nothing).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let response = loop {
        let mut request = tonic::Request::new(crate::batch_request(events.clone()));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        match client.ingest_event_batch(request).await {
            Err(status)
                if status.code() == tonic::Code::Unauthenticated
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            result => break result.unwrap().into_inner(),
        }
    };
    assert_eq!(response.rejected_count, 0, "{response:?}");
}

//! JetStream key-value buckets (writer leases, API keys), opened in a way NATS 2.9 accepts.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

/// Opens (or creates) the key-value bucket `name` with `replicas` copies on a NATS cluster;
/// entries older than `max_age` vanish (`Duration::ZERO`: never).
///
/// The bucket's backing stream is created here with the settings a key-value bucket has,
/// rather than through `create_key_value`: that call first reads account information in a
/// shape NATS 2.9 (Debian's, used locally and in CI) does not send.
pub async fn open_bucket(
    jetstream: &jetstream::Context,
    name: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, String> {
    let failed = |error: String| format!("cannot open key-value bucket {name}: {error}");
    jetstream
        .get_or_create_stream(jetstream::stream::Config {
            name: format!("KV_{name}"),
            description: Some(description.into()),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_bytes: -1,
            max_message_size: -1,
            max_age,
            duplicate_window: if max_age.is_zero() {
                Duration::from_secs(120)
            } else {
                max_age.min(Duration::from_secs(120))
            },
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|error| failed(error.to_string()))?;
    jetstream
        .get_key_value(name)
        .await
        .map_err(|error| failed(error.to_string()))
}

//! OTLP ingestion next to native ingestion (issue #16): GenAI spans exported over OTLP/gRPC
//! against native `IngestEventBatch` calls carrying as many events per request, alternated
//! ABBA in one run; spans and events stored per second end to end, and gateway and writer
//! CPU per 1k spans and per 1k native events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::ingest::{self, Target, Transport};
use crate::privacy::median;
use crate::procs::{CpuMark, Watched};
use crate::stats::{round3, round5};
use crate::workload::{Rng, tenant_of};

/// Runs of each side (ABBA, BAAB).
const ROUNDS: u64 = 2;

/// The comparison's settings.
pub struct Plan {
    /// Events per native run; OTLP runs send half as many spans (two events each).
    pub events_per_run: u64,
    /// Native events per request; OTLP requests carry half as many spans.
    pub batch: usize,
    pub concurrency: u64,
    pub settle: Duration,
}

/// One side's runs: events stored per second and CPU seconds per 1k events.
#[derive(Default)]
struct Side {
    stored_events: Vec<f64>,
    gateway_cpu: Vec<f64>,
    writer_cpu: Vec<f64>,
}

impl Side {
    fn add(&mut self, stored_per_second: f64, cpu: &[(String, f64)]) {
        self.stored_events.push(stored_per_second);
        for (name, seconds) in cpu {
            match name.as_str() {
                "gateway" => self.gateway_cpu.push(*seconds),
                "writer" => self.writer_cpu.push(*seconds),
                _ => {}
            }
        }
    }
}

/// Runs the comparison; prints its lines and returns its JSON.
pub async fn compare(
    target: &Target,
    channel: Channel,
    watched: &[Watched],
    plan: &Plan,
) -> anyhow::Result<Value> {
    let (mut native, mut otlp) = (Side::default(), Side::default());
    for round in 0..ROUNDS {
        for spans in crate::privacy::abba(round) {
            target.settle(plan.settle).await?;
            // Clients of their own: the tenth-load open loop's are 9_000 onwards, and a reused
            // client resends its event ids (stored once, so that load would be lighter).
            let first_client = 11_000 + plan.concurrency * (2 * round + u64::from(spans));
            let mark = CpuMark::take(watched);
            if spans {
                let stored = closed_loop(target, &channel, plan, first_client).await?;
                otlp.add(stored, &mark.per_thousand(plan.events_per_run));
            } else {
                let run = ingest::closed_loop(
                    target,
                    Transport::Grpc,
                    plan.events_per_run,
                    plan.batch,
                    plan.concurrency,
                    first_client,
                    None,
                )
                .await?;
                native.add(run.stored_per_second, &mark.per_thousand(run.events));
            }
        }
    }
    // Per 1k spans: a span is two events, so twice the per-event figure.
    let per_span = |values: &[f64]| round5(median(values) * 2.0);
    let result = json!({
        "spans_per_run": plan.events_per_run / 2, "runs_each": ROUNDS,
        "otlp_spans_stored_per_s": (median(&otlp.stored_events) / 2.0).round(),
        "otlp_events_stored_per_s": median(&otlp.stored_events).round(),
        "native_events_stored_per_s": median(&native.stored_events).round(),
        "stored_events_ratio": round3(median(&otlp.stored_events) / median(&native.stored_events)),
        "gateway_cpu_s_per_1k_spans": per_span(&otlp.gateway_cpu),
        "writer_cpu_s_per_1k_spans": per_span(&otlp.writer_cpu),
        "gateway_cpu_s_per_1k_native_events": round5(median(&native.gateway_cpu)),
        "writer_cpu_s_per_1k_native_events": round5(median(&native.writer_cpu)),
        "gateway_cpu_ratio_per_event": round3(median(&otlp.gateway_cpu) / median(&native.gateway_cpu)),
    });
    println!(
        "  OTLP/gRPC: {} spans/s stored ({} events/s, x{} native's {}); gateway CPU/1k spans {} s, per 1k native events {} s (per event x{})",
        result["otlp_spans_stored_per_s"],
        result["otlp_events_stored_per_s"],
        result["stored_events_ratio"],
        result["native_events_stored_per_s"],
        result["gateway_cpu_s_per_1k_spans"],
        result["gateway_cpu_s_per_1k_native_events"],
        result["gateway_cpu_ratio_per_event"],
    );
    Ok(result)
}

/// Exports `plan.events_per_run / 2` spans as fast as the gateway answers, then waits until
/// ClickHouse holds their events; returns events stored per second.
async fn closed_loop(
    target: &Target,
    channel: &Channel,
    plan: &Plan,
    first_client: u64,
) -> anyhow::Result<f64> {
    let spans = plan.events_per_run / 2;
    let per_request = (plan.batch / 2).max(1) as u64;
    let rows_before = target.stored_rows().await?;
    let remaining = Arc::new(AtomicU64::new(spans));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..plan.concurrency {
        let client_id = first_client + worker;
        let mut exporter = SpanSource::new(target, client_id);
        let mut client = TraceServiceClient::new(channel.clone());
        let remaining = remaining.clone();
        workers.push(tokio::spawn(async move {
            let mut sent = 0;
            while let Ok(left) =
                remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                        .map(|_| left.saturating_sub(per_request))
                })
            {
                let take = left.min(per_request);
                let answer = client.export(exporter.request(take)).await?.into_inner();
                if let Some(partial) = answer.partial_success {
                    anyhow::bail!("spans refused: {}", partial.error_message);
                }
                sent += take;
            }
            anyhow::Ok(sent)
        }));
    }
    let mut sent = 0;
    for worker in workers {
        sent += worker.await??;
    }
    let stored_at = target
        .wait_for_rows(rows_before + 2 * sent, Duration::from_secs(600))
        .await?;
    #[allow(clippy::cast_precision_loss)]
    Ok((2 * sent) as f64 / (stored_at - started).as_secs_f64())
}

/// One simulated instrumented agent: chat and tool spans of ~1 KB, ten to a trace.
struct SpanSource {
    tenant: String,
    session: String,
    id_base: u64,
    sequence: u64,
    rng: Rng,
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
        }),
        ..KeyValue::default()
    }
}

/// The first span id of a client: random middle bits, the client number in the top 16 (so
/// never zero, and apart from every other client's), the low 16 for its spans' sequence.
fn id_base(seed: u64, client: u64) -> u64 {
    (seed & 0x0000_ffff_ffff_0000) | (client << 48)
}

impl SpanSource {
    fn new(target: &Target, client: u64) -> Self {
        let mut rng = Rng::new(client ^ 0x07_17_00);
        let seed = rng.next_u64() ^ target.run.len() as u64 ^ u64::from(std::process::id());
        let id_base = id_base(seed, client);
        Self {
            tenant: tenant_of(&target.run, client, target.tenants),
            session: format!("{}-otlp-c{client}", target.run),
            id_base,
            sequence: 0,
            rng,
        }
    }

    fn request(&mut self, spans: u64) -> ExportTraceServiceRequest {
        let spans = (0..spans).map(|_| self.span()).collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", "bench-agent"),
                        text("chaukas.tenant.id", self.tenant.clone()),
                    ],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn span(&mut self) -> Span {
        self.sequence += 1;
        // Never zero: the client number fills the top bits of the base.
        let id = self.id_base.wrapping_add(self.sequence);
        let trace = self.id_base.wrapping_add(self.sequence / 10);
        let start = 1_764_000_000_000_000_000 + self.sequence * 1_000_000;
        let mut attributes = vec![text("gen_ai.conversation.id", self.session.clone())];
        if self.sequence.is_multiple_of(2) {
            let prompt = "x".repeat(200 + usize::try_from(self.rng.below(400)).unwrap_or(0));
            attributes.extend([
                text("gen_ai.operation.name", "chat"),
                text("gen_ai.provider.name", "openai"),
                text("gen_ai.request.model", "gpt-4o"),
                text("gen_ai.response.model", "gpt-4o-2024-08-06"),
                int("gen_ai.usage.input_tokens", 100 + self.rng.below(900)),
                int("gen_ai.usage.output_tokens", 10 + self.rng.below(300)),
                text(
                    "gen_ai.input.messages",
                    format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"{prompt}"}}]}}]"#),
                ),
                text(
                    "gen_ai.output.messages",
                    r#"[{"role":"assistant","parts":[{"type":"text","content":"It is sunny and 21 degrees."}]}]"#,
                ),
            ]);
        } else {
            attributes.extend([
                text("gen_ai.operation.name", "execute_tool"),
                text("gen_ai.tool.name", "search"),
                text("gen_ai.tool.call.id", format!("call-{}", self.sequence)),
                text(
                    "gen_ai.tool.call.arguments",
                    r#"{"q":"weather in Paris","limit":5}"#,
                ),
                text("gen_ai.tool.call.result", r#"{"temp":21,"sky":"clear"}"#),
            ]);
        }
        Span {
            trace_id: [trace.to_be_bytes(), self.id_base.to_be_bytes()].concat(),
            span_id: id.to_be_bytes().to_vec(),
            name: "bench span".into(),
            kind: 1,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 250_000_000,
            attributes,
            ..Span::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every span of a run is stored: ids repeat neither within a client nor across clients
    /// (a repeated span id is, rightly, stored once).
    #[test]
    fn span_ids_are_unique_and_never_zero() {
        let target_ids = |client: u64| {
            let mut source = SpanSource {
                tenant: "t".into(),
                session: "s".into(),
                id_base: 0,
                sequence: 0,
                rng: Rng::new(client),
            };
            source.id_base = id_base(source.rng.next_u64(), client);
            (0..5_000)
                .map(|_| {
                    let span = source.span();
                    (span.trace_id, span.span_id)
                })
                .collect::<Vec<_>>()
        };
        let mut seen = std::collections::HashSet::new();
        for client in 9_000..9_004 {
            for (trace, span) in target_ids(client) {
                assert!(span.iter().any(|&b| b != 0) && trace.iter().any(|&b| b != 0));
                assert!(seen.insert(span), "span ids repeat");
            }
        }
    }
}

#[cfg(test)]
mod cost_tests {
    use std::time::Instant;

    use prost::Message;

    use super::*;

    /// Where an OTLP span's gateway time goes, step by step, on the phase's own spans
    /// (`cargo test --release -p chaukas-bench otlp_steps -- --ignored --nocapture`).
    #[test]
    #[ignore = "a timing, not a check: run by hand"]
    fn otlp_steps() {
        let mut source = SpanSource {
            tenant: "bench-t".into(),
            session: "bench-s".into(),
            id_base: id_base(7, 9_000),
            sequence: 0,
            rng: Rng::new(7),
        };
        let requests: Vec<Vec<u8>> = (0..400)
            .map(|_| source.request(50).encode_to_vec())
            .collect();
        let spans = 400.0 * 50.0;
        let origin = chaukas_otlp::Origin {
            tenant: Some("bench-t"),
            project: None,
        };
        let mut timings = [std::time::Duration::ZERO; 4];
        for body in &requests {
            let started = Instant::now();
            let cost = chaukas_otlp::Encoding::Protobuf.cost(body).unwrap();
            timings[0] += started.elapsed();
            let started = Instant::now();
            let request = chaukas_otlp::Encoding::Protobuf.decode(body).unwrap();
            timings[1] += started.elapsed();
            let started = Instant::now();
            let mapped = chaukas_otlp::map_export(&request, &origin);
            timings[2] += started.elapsed();
            let started = Instant::now();
            let bytes: usize = mapped.events.iter().map(|e| e.encode_to_vec().len()).sum();
            timings[3] += started.elapsed();
            std::hint::black_box((cost, bytes));
        }
        let per = |d: std::time::Duration| d.as_nanos() as f64 / spans;
        println!(
            "per span: cost walk {:.0} ns, decode {:.0} ns, map {:.0} ns, encode events {:.0} ns",
            per(timings[0]),
            per(timings[1]),
            per(timings[2]),
            per(timings[3])
        );
    }
}

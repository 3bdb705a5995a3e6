//! Logging and tracing set-up shared by every binary. Logs go to stderr always: in `mcpr
//! stdio` stdout carries the MCP protocol and a single stray line would corrupt it.
//!
//! Traces are exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and are off otherwise: then the subscriber is
//! exactly the logging one and [`enabled`] is false, which every traced place checks first,
//! so an untraced router creates no span and touches no payload (docs/OBSERVABILITY.md).

pub mod mcp;

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The `tracing` target of every span meant for export: the OpenTelemetry layer takes these
/// and nothing else (log events stay logs).
pub const TRACE_TARGET: &str = "mcpr::trace";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// True when spans are exported. One relaxed load: the data path asks it before building
/// anything of a span.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The sampler the exporter was built with, asked once per request before any span exists
/// (`mcp::first_span`): a request it drops costs no span in any process.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

pub(crate) fn sampler() -> Option<&'static Sampler> {
    SAMPLER.get()
}

thread_local! {
    /// The trace id a root span is to take: the one its sampling decision was made on.
    static HANDED_OVER: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Runs `start` (which starts a root span) so that the span's trace id is `trace_id`.
/// Every sampler the router offers is a function of the parent and the trace id, so the
/// SDK, deciding again on the span, decides as [`mcp::first_span`] did.
pub(crate) fn with_trace_id<T>(trace_id: TraceId, start: impl FnOnce() -> T) -> T {
    HANDED_OVER.with(|next| next.set(Some(trace_id)));
    let started = start();
    // Cleared even when `start` made no root span (it had a current span as parent).
    HANDED_OVER.with(|next| next.set(None));
    started
}

/// The SDK's id generator: random ids, except the trace id handed over by
/// [`with_trace_id`].
#[derive(Debug, Default)]
struct Ids(RandomIdGenerator);

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        HANDED_OVER
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// How spans leave the process (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// The tracing settings read from the standard OpenTelemetry variables.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// Where spans go: for gRPC the collector's address, for HTTP the full URL of its
    /// traces path (`/v1/traces` added to `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    pub protocol: Protocol,
    pub sampler: SamplerSetting,
    /// `OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`; else the
    /// binary's own name.
    pub service_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerSetting {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
}

impl SamplerSetting {
    fn sampler(self) -> Sampler {
        match self {
            SamplerSetting::AlwaysOn => Sampler::AlwaysOn,
            SamplerSetting::AlwaysOff => Sampler::AlwaysOff,
            SamplerSetting::Ratio(r) => Sampler::TraceIdRatioBased(r),
            SamplerSetting::ParentBasedAlwaysOn => {
                Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
            }
            SamplerSetting::ParentBasedAlwaysOff => {
                Sampler::ParentBased(Box::new(Sampler::AlwaysOff))
            }
            SamplerSetting::ParentBasedRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

impl TraceSettings {
    /// Reads the settings through `var` (the process environment in [`init`]); `Ok(None)`
    /// when no endpoint is set (or `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
    /// A value that is set but wrong is an error naming the variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            // The specification's default.
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf, got {other:?}"
                ));
            }
        };
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(traces), _) => traces,
            (None, Some(base)) if protocol == Protocol::HttpProtobuf => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, Some(base)) => base,
            (None, None) => return Ok(None),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL, got {endpoint:?}"
            ));
        }
        let ratio = || -> Result<f64, String> {
            match var("OTEL_TRACES_SAMPLER_ARG") {
                None => Ok(1.0),
                Some(arg) => arg
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        format!("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got {arg:?}")
                    }),
            }
        };
        let sampler = match var("OTEL_TRACES_SAMPLER").as_deref() {
            None | Some("parentbased_always_on") => SamplerSetting::ParentBasedAlwaysOn,
            Some("always_on") => SamplerSetting::AlwaysOn,
            Some("always_off") => SamplerSetting::AlwaysOff,
            Some("traceidratio") => SamplerSetting::Ratio(ratio()?),
            Some("parentbased_always_off") => SamplerSetting::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => SamplerSetting::ParentBasedRatio(ratio()?),
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER must be one of always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off, parentbased_traceidratio; \
                     got {other:?}"
                ));
            }
        };
        let service_name = var("OTEL_SERVICE_NAME").or_else(|| {
            var("OTEL_RESOURCE_ATTRIBUTES")?
                .split(',')
                .find_map(|pair| pair.trim().strip_prefix("service.name=").map(str::to_owned))
        });
        Ok(Some(TraceSettings {
            endpoint,
            protocol,
            sampler,
            service_name,
        }))
    }
}

/// The process's tracing: flushes and stops the exporter when dropped (or at [`shutdown`]),
/// so the spans of the last calls before a shutdown are not lost.
///
/// [`shutdown`]: Telemetry::shutdown
#[must_use = "dropping it stops the span exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still buffered, waiting at most a few seconds for the collector.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("mcpr: flushing spans at shutdown: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs a stderr `tracing` subscriber filtered by `RUST_LOG` (default `info`, with the
/// chattier dependencies at `warn`), and an OTLP span exporter when the environment names a
/// collector. `service` is the `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
/// Must run inside a Tokio runtime (the gRPC exporter's channel lives there). A second call
/// installs nothing and returns an inert handle.
pub fn init(service: &str) -> Result<Telemetry, String> {
    let settings = TraceSettings::from_vars(|name| std::env::var(name).ok())?;
    let json = std::env::var("MCPR_LOG_FORMAT").is_ok_and(|v| v == "json");
    let Some(settings) = settings else {
        init_logging_only(json);
        return Ok(Telemetry { provider: None });
    };
    let exporter = match settings.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&settings.endpoint)
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&settings.endpoint)
            .build(),
    }
    .map_err(|e| format!("OTLP exporter for {}: {e}", settings.endpoint))?;
    let service_name = settings
        .service_name
        .clone()
        .unwrap_or_else(|| service.to_owned());
    // The builder's detectors read OTEL_RESOURCE_ATTRIBUTES; the service name is set last so
    // that a binary's own name never shows as `unknown_service`.
    let resource = Resource::builder().with_service_name(service_name).build();
    // One sampler for the SDK and for the decision before any span (`mcp::first_span`).
    let sampler = settings.sampler.sampler();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler.clone())
        .with_id_generator(Ids::default())
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer("mcpr");
    // What the layer adds by default costs on every span, sampled or not (docs/BENCHMARKS.md,
    // issue 14): source location and thread attributes (one place in telemetry/mcp.rs makes
    // every span, and a task hops threads), idle/busy timings (two clock reads per poll of
    // an instrumented future) and making the span the current context on every poll (the
    // router asks a span for its context explicitly, `TraceContext::of`).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == TRACE_TARGET
        }));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = if json {
        let fmt = fmt
            .json()
            .event_format(WithTraceIds {
                inner: tracing_subscriber::fmt::format().json(),
                json: true,
            })
            .with_filter(log_filter());
        tracing_subscriber::registry()
            .with(otel)
            .with(fmt)
            .try_init()
    } else {
        let fmt = fmt
            .event_format(WithTraceIds {
                inner: tracing_subscriber::fmt::format().with_target(false),
                json: false,
            })
            .with_filter(log_filter());
        tracing_subscriber::registry()
            .with(otel)
            .with(fmt)
            .try_init()
    };
    if installed.is_err() {
        // Someone installed a subscriber first: spans would go nowhere.
        let _ = provider.shutdown();
        return Ok(Telemetry { provider: None });
    }
    let _ = SAMPLER.set(sampler);
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!(
        endpoint = %settings.endpoint,
        protocol = ?settings.protocol,
        sampler = ?settings.sampler,
        "exporting traces over OTLP"
    );
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Resolves on Ctrl-C or SIGTERM: a binary's cue to flush its spans ([`Telemetry`]) and
/// stop.
pub async fn terminated() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Logging alone, without a collector: kept as it was before tracing existed, so that an
/// untraced process pays nothing for it.
pub fn init_logging() {
    let json = std::env::var("MCPR_LOG_FORMAT").is_ok_and(|v| v == "json");
    init_logging_only(json);
}

fn init_logging_only(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,sqlx=warn"))
}

/// A log line's formatter that adds the `trace_id` and `span_id` of the span it was logged
/// in: as the first fields of a JSON line, or at the end of a text one.
struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx.lookup_current().and_then(|span| {
            let extensions = span.extensions();
            let data = extensions.get::<tracing_opentelemetry::OtelData>()?;
            let trace_id = data.trace_id()?;
            let span_id = data.span_id()?;
            (trace_id != opentelemetry::TraceId::INVALID).then_some((trace_id, span_id))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        if self.json && line.starts_with('{') {
            write!(
                writer,
                "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{}",
                &line[1..]
            )
        } else {
            let body = line.strip_suffix('\n').unwrap_or(&line);
            writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, String> {
        TraceSettings::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn off_without_an_endpoint() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(
            settings(&[("OTEL_TRACES_SAMPLER", "always_on")])
                .unwrap()
                .is_none()
        );
        let disabled = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(disabled.unwrap().is_none());
    }

    #[test]
    fn endpoint_and_protocol() {
        let http = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            .unwrap()
            .unwrap();
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        assert_eq!(http.endpoint, "http://c:4318/v1/traces");
        let grpc = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(grpc.protocol, Protocol::Grpc);
        assert_eq!(grpc.endpoint, "http://c:4317");
        let wrong = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        assert!(wrong.unwrap_err().contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let no_scheme = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317")]);
        assert!(
            no_scheme
                .unwrap_err()
                .contains("OTEL_EXPORTER_OTLP_ENDPOINT")
        );
    }

    #[test]
    fn samplers() {
        let with = |sampler: &str, arg: Option<&str>| {
            let mut vars = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_TRACES_SAMPLER", sampler),
            ];
            if let Some(arg) = arg {
                vars.push(("OTEL_TRACES_SAMPLER_ARG", arg));
            }
            settings(&vars).map(|s| s.unwrap().sampler)
        };
        assert_eq!(with("always_off", None), Ok(SamplerSetting::AlwaysOff));
        assert_eq!(
            with("traceidratio", Some("0.01")),
            Ok(SamplerSetting::Ratio(0.01))
        );
        assert_eq!(
            with("parentbased_traceidratio", None),
            Ok(SamplerSetting::ParentBasedRatio(1.0))
        );
        assert!(
            with("traceidratio", Some("2"))
                .unwrap_err()
                .contains("OTEL_TRACES_SAMPLER_ARG")
        );
        assert!(
            with("sometimes", None)
                .unwrap_err()
                .contains("OTEL_TRACES_SAMPLER")
        );
    }

    /// A log writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Logs one line inside a traced span and one outside; returns the output and the
    /// span's ids.
    fn log_lines(json: bool) -> (String, String, String) {
        let provider = SdkTracerProvider::builder().build();
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target() == TRACE_TARGET
            }));
        let out = Captured::default();
        let writer = out.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false);
        let subscriber = tracing_subscriber::registry().with(otel);
        let ids = if json {
            let fmt = fmt.json().event_format(WithTraceIds {
                inner: tracing_subscriber::fmt::format().json(),
                json: true,
            });
            tracing::subscriber::with_default(subscriber.with(fmt), log_in_span)
        } else {
            let fmt = fmt.event_format(WithTraceIds {
                inner: tracing_subscriber::fmt::format().with_ansi(false),
                json: false,
            });
            tracing::subscriber::with_default(subscriber.with(fmt), log_in_span)
        };
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        (text, ids.0, ids.1)
    }

    fn log_in_span() -> (String, String) {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let span = mcp::operation_span("test".into(), mcp::Side::Server, None);
        let ids = span.in_scope(|| {
            tracing::info!("inside");
            let cx = span.context();
            let context = cx.span().span_context().clone();
            (
                context.trace_id().to_string(),
                context.span_id().to_string(),
            )
        });
        tracing::info!("outside");
        ids
    }

    #[test]
    fn log_lines_carry_the_span_ids() {
        let (text, trace_id, span_id) = log_lines(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(&format!("inside trace_id={trace_id} span_id={span_id}")),
            "{text}"
        );
        assert!(!lines[1].contains("trace_id"), "{text}");

        let (text, trace_id, span_id) = log_lines(true);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines[0]["trace_id"], trace_id.as_str(), "{text}");
        assert_eq!(lines[0]["span_id"], span_id.as_str(), "{text}");
        assert_eq!(lines[0]["fields"]["message"], "inside");
        assert!(lines[1].get("trace_id").is_none(), "{text}");
    }

    /// The sampler decides before any span exists (`mcp::first_span`); a kept root span must
    /// then be sampled by the SDK too, which it is only if it has the trace id decided on.
    #[test]
    fn a_first_span_keeps_what_its_sampler_decided() {
        use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
        let sampler = || Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.5)));
        let _ = SAMPLER.set(sampler());
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler())
            .with_id_generator(Ids::default())
            .build();
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target() == TRACE_TARGET
            }));
        let message = crate::jsonrpc::Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
        )
        .unwrap();
        let span_context = |span: &tracing::Span| {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            span.context().span().span_context().clone()
        };
        tracing::subscriber::with_default(tracing_subscriber::registry().with(otel), || {
            let (mut kept, mut dropped) = (0, 0);
            for _ in 0..400 {
                match mcp::first_span(&message, mcp::Side::Server, None) {
                    mcp::Traced::Span(span) => {
                        assert!(span_context(&span).is_sampled(), "kept, so sampled");
                        kept += 1;
                    }
                    mcp::Traced::Dropped(cx) => {
                        assert!(cx.traceparent.ends_with("-00"), "{}", cx.traceparent);
                        assert!(cx.parent().is_some(), "a valid traceparent");
                        dropped += 1;
                    }
                }
            }
            assert!(
                kept > 100 && dropped > 100,
                "kept {kept}, dropped {dropped}"
            );

            // A client's context decides: its trace goes on, sampled or not.
            for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
                let client = SpanContext::new(
                    TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
                    SpanId::from(0xb7ad6b7169203331),
                    flags,
                    true,
                    TraceState::default(),
                );
                let parent = mcp::Context::new().with_remote_span_context(client.clone());
                match mcp::first_span(&message, mcp::Side::Server, Some(parent)) {
                    mcp::Traced::Span(span) => {
                        assert!(flags.is_sampled());
                        assert_eq!(span_context(&span).trace_id(), client.trace_id());
                    }
                    mcp::Traced::Dropped(cx) => {
                        assert!(!flags.is_sampled());
                        assert!(
                            cx.traceparent
                                .starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                            "{}",
                            cx.traceparent
                        );
                    }
                }
            }
        });
    }

    #[test]
    fn service_name_from_resource_attributes() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, service.name=edge",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.service_name.as_deref(), Some("edge"));
    }
}

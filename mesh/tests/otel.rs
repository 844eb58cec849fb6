//! Feature `otel`: an ask's trace continues on the remote node.

mod support;

use std::time::Duration;

use mesh::tls::ClusterCa;
use mesh::Request;
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use support::cluster;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// The trace id of the current span, as the OpenTelemetry layer sees it.
fn current_trace_id() -> TraceId {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_handler_runs_in_the_callers_trace() {
    let provider = SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("mesh-test"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    let ca = ClusterCa::generate("mesh").unwrap();
    let nodes = cluster(&ca, &["a", "b"]).await;
    nodes[1]
        .register_service("trace", |req: Request<(), String>| {
            req.reply(current_trace_id().to_string());
        })
        .unwrap();

    let caller = tracing::info_span!("caller");
    let expected = caller.context().span().span_context().trace_id();
    assert_ne!(expected, TraceId::INVALID, "the caller's span is traced");
    let ask = nodes[0].ask::<(), String>("b", "trace", (), Duration::from_secs(5));
    let remote = ask.instrument(caller).await.unwrap();
    assert_eq!(remote, expected.to_string(), "the handler's trace id");

    // Outside any trace, the ask goes as a plain ask: the handler's span
    // starts a trace of its own.
    let untraced: String = nodes[0]
        .ask("b", "trace", (), Duration::from_secs(5))
        .await
        .unwrap();
    assert_ne!(untraced, expected.to_string());
}

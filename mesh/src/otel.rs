//! W3C trace context across asks (feature `otel`): an ask made inside a
//! span carries that span's `traceparent` (and `tracestate`) in its
//! envelope ([`crate::wire::EnvelopeHeader::TracedAsk`]), and the remote
//! node runs the handler inside a span whose parent is the caller's, so
//! that an OpenTelemetry backend shows one trace across nodes.
//!
//! The subscriber must have a `tracing-opentelemetry` layer; the context is
//! written and read with the standard [`TraceContextPropagator`]. An ask
//! made outside any traced span is sent as a plain ask.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context of `span` as W3C header fields, empty if the span is
/// not part of a valid trace.
pub(crate) fn context_of(span: &tracing::Span) -> Vec<(String, String)> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.into_iter().collect()
}

/// The span a traced ask's handler runs in: a child of the caller's span
/// that `fields` (W3C header fields) name.
pub(crate) fn handler_span(ask: u64, fields: &[(&str, &str)]) -> tracing::Span {
    let carrier: HashMap<String, String> = fields
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let parent = TraceContextPropagator::new().extract(&carrier);
    let span = tracing::info_span!("mesh.handle", ask);
    // Fails only without an OpenTelemetry layer: nothing to continue then.
    let _ = span.set_parent(parent);
    span
}

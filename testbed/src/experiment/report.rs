//! `report.json` and `report.html`.
//!
//! The HTML page is self-contained (inline SVG and CSS, no script, no
//! network): a verdict banner, a timeline with one lane per node (how the
//! node sees itself, fault bands, shard moves, paused and dead intervals,
//! violating operations), throughput, latency p50/p99 and errors per
//! second, and the verdict's details.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::checker::Verdict;
use super::history::{pair, Event, EventKind};
use super::runner::RunRecord;
use super::ExperimentError;

/// One second of the workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the workload started.
    pub second: u64,
    /// Operations completed `ok`.
    pub ok: u64,
    /// Completed `fail`.
    pub fail: u64,
    /// Completed `info`.
    pub info: u64,
    /// Median latency of `ok` operations, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// Per-second throughput, errors and latency.
pub fn series(history: &[Event], workload_start: u64) -> Vec<Second> {
    let Ok(operations) = pair(history) else {
        return Vec::new();
    };
    let mut buckets: BTreeMap<u64, (Second, Vec<u64>)> = BTreeMap::new();
    for op in &operations {
        let Some(done) = &op.completion else { continue };
        let second = done.time.saturating_sub(workload_start) / 1_000_000_000;
        let (bucket, latencies) = buckets.entry(second).or_default();
        bucket.second = second;
        match done.kind {
            EventKind::Ok => {
                bucket.ok += 1;
                latencies.push(done.time.saturating_sub(op.invoke.time));
            }
            EventKind::Fail => bucket.fail += 1,
            _ => bucket.info += 1,
        }
    }
    let last = buckets.keys().last().copied().unwrap_or(0);
    (0..=last)
        .map(|s| {
            let (mut bucket, mut latencies) = buckets.remove(&s).unwrap_or_default();
            bucket.second = s;
            latencies.sort_unstable();
            let at = |q: f64| {
                latencies
                    .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                    .map_or(0.0, |ns| *ns as f64 / 1e6)
            };
            bucket.p50_ms = at(0.5);
            bucket.p99_ms = at(0.99);
            bucket
        })
        .collect()
}

#[derive(Serialize)]
struct ReportJson<'a> {
    record: &'a RunRecord,
    verdict: &'a Verdict,
    series: Vec<Second>,
}

/// Writes `report.json` and `report.html` into `dir`.
pub fn write(
    dir: &Path,
    record: &RunRecord,
    history: &[Event],
    verdict: &Verdict,
) -> Result<(), ExperimentError> {
    let series = series(history, record.workload_start);
    let html = render_html(record, history, verdict, &series);
    let json = ReportJson {
        record,
        verdict,
        series,
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExperimentError::Io { path, source }
    };
    let json_path = dir.join("report.json");
    let text = serde_json::to_vec_pretty(&json).map_err(|e| io(&json_path)(e.into()))?;
    std::fs::write(&json_path, text).map_err(io(&json_path))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html).map_err(io(&html_path))
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 70.0;
const LANE: f64 = 44.0;

fn status_color(status: &str) -> &'static str {
    match status {
        "up" => "#4caf50",
        "unreachable" => "#ff9800",
        "joining" => "#90caf9",
        "leaving" | "exiting" => "#9c27b0",
        "down" | "removed" => "#e53935",
        _ => "#bdbdbd",
    }
}

/// The page.
pub fn render_html(
    record: &RunRecord,
    history: &[Event],
    verdict: &Verdict,
    series: &[Second],
) -> String {
    let end = history
        .iter()
        .map(|e| e.time)
        .chain([record.workload_end])
        .max()
        .unwrap_or(1)
        .max(1);
    let x = |t: u64| LEFT + (t as f64 / end as f64) * (WIDTH - LEFT - 10.0);
    let mut page = String::new();
    let (class, word) = if verdict.valid {
        ("valid", "VALID")
    } else {
        ("invalid", "INVALID")
    };
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>{name}: {word}</title>
<style>
body {{ font: 14px sans-serif; margin: 16px; background: #fff; color: #222; }}
#verdict {{ padding: 12px; font-size: 16px; border-radius: 4px; }}
#verdict.valid {{ background: #c8e6c9; }} #verdict.invalid {{ background: #ffcdd2; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; font-size: 12px; }}
tr.violating {{ background: #ffcdd2; }}
.legend span {{ display: inline-block; padding: 1px 6px; margin-right: 6px; color: #fff; font-size: 12px; }}
</style></head><body>
<h1>{name}</h1><p>{description}</p><p>seed {seed}, nodes {nodes}</p>
<div id="verdict" class="{class}"><b>{word}</b> {summary}{links}</div>
"#,
        links = if verdict.violating_events.is_empty() {
            String::new()
        } else {
            format!(
                "<br>violating operations (on the timeline): {}",
                verdict
                    .violating_events
                    .iter()
                    .take(12)
                    .map(|i| format!(r##"<a href="#op-{i}">op {i}</a>"##))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        name = esc(&record.scenario),
        description = esc(&record.description),
        seed = record.seed,
        nodes = esc(&record.nodes.join(", ")),
        summary = esc(verdict
            .summary
            .split_once(": ")
            .map_or(verdict.summary.as_str(), |(_, rest)| rest)),
    );
    page.push_str(r##"<h2>Timeline</h2><div class="legend"><span style="background:#4caf50">up</span><span style="background:#ff9800">unreachable</span><span style="background:#90caf9">joining</span><span style="background:#9c27b0">leaving</span><span style="background:#e53935">down</span><span style="background:#616161">dead</span><span style="background:#fbc02d">paused</span><span style="background:rgba(211,47,47,.5)">fault</span><span style="background:#1565c0">shard move</span><span style="background:#000">violating op</span></div>"##);
    let height = 30.0 + LANE * record.nodes.len() as f64;
    let _ = write!(
        page,
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}">"#
    );
    // Time axis every 5 s.
    let mut tick = 0u64;
    while tick <= end {
        let tx = x(tick);
        let _ = write!(
            page,
            r##"<line x1="{tx:.1}" y1="15" x2="{tx:.1}" y2="{height}" stroke="#eee"/><text x="{tx:.1}" y="12" font-size="10" text-anchor="middle">{}s</text>"##,
            tick / 1_000_000_000
        );
        tick += 5_000_000_000;
    }
    if let Some(heal) = record.last_heal {
        let hx = x(heal);
        let _ = write!(
            page,
            r##"<line x1="{hx:.1}" y1="15" x2="{hx:.1}" y2="{height}" stroke="#1b5e20" stroke-dasharray="4 3"><title>last fault event</title></line>"##
        );
    }
    let flagged: std::collections::BTreeSet<u64> =
        verdict.violating_events.iter().copied().collect();
    for (lane, node) in record.nodes.iter().enumerate() {
        let top = 20.0 + LANE * lane as f64;
        let _ = write!(
            page,
            r#"<g class="lane" data-node="{n}"><text x="4" y="{ty:.1}" font-size="13">{n}</text>"#,
            n = esc(node),
            ty = top + 24.0
        );
        // How the node sees itself, sample to sample, merged into runs.
        let samples: Vec<_> = record.samples.iter().filter(|s| s.node == *node).collect();
        let mut runs: Vec<(u64, u64, String)> = Vec::new();
        for pair in samples.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.time - a.time > 2_000_000_000 {
                continue;
            }
            let mut status = a.self_status().unwrap_or_else(|| "unknown".into());
            let by = a.unreachable_by();
            if !by.is_empty() {
                status = format!("{status} (by {})", by.join(", "));
            }
            match runs.last_mut() {
                Some(last) if last.1 == a.time && last.2 == status => last.1 = b.time,
                _ => runs.push((a.time, b.time, status)),
            }
        }
        for (from, to, status) in runs {
            let _ = write!(
                page,
                r#"<rect class="status" x="{:.1}" y="{:.1}" width="{:.1}" height="16" fill="{}"><title>{node}: {status}</title></rect>"#,
                x(from),
                top + 12.0,
                (x(to) - x(from)).max(0.5),
                status_color(status.split(' ').next().unwrap_or_default())
            );
        }
        // Dead and paused intervals from the process events.
        let mut down_since: Option<(u64, &str)> = None;
        let mut intervals = Vec::new();
        for event in record.node_events.iter().filter(|e| e.node == *node) {
            let what = event.what.as_str();
            if what == "paused" || what == "killed" || what.starts_with("exited") {
                if down_since.is_none() {
                    let kind = if what == "paused" { "paused" } else { "dead" };
                    down_since = Some((event.time, kind));
                }
            } else if what == "resumed" || what == "started" {
                if let Some((since, kind)) = down_since.take() {
                    intervals.push((since, event.time, kind));
                }
            }
        }
        if let Some((since, kind)) = down_since {
            intervals.push((since, end, kind));
        }
        for (from, to, kind) in intervals {
            let color = if kind == "paused" {
                "#fbc02d"
            } else {
                "#616161"
            };
            let _ = write!(
                page,
                r#"<rect class="{kind}" x="{:.1}" y="{:.1}" width="{:.1}" height="16" fill="{color}"><title>{node} {kind}</title></rect>"#,
                x(from),
                top + 12.0,
                (x(to) - x(from)).max(1.0)
            );
        }
        for fault in record.faults.iter().filter(|f| f.nodes.contains(node)) {
            let to = fault.end.unwrap_or(end);
            let _ = write!(
                page,
                r#"<rect class="fault" x="{:.1}" y="{:.1}" width="{:.1}" height="8" fill="rgba(211,47,47,.5)"><title>{}</title></rect>"#,
                x(fault.start),
                top + 2.0,
                (x(to) - x(fault.start)).max(2.0),
                esc(&fault.text)
            );
        }
        for shard_move in record
            .shard_moves
            .iter()
            .filter(|m| m.to.split('#').next() == Some(node))
        {
            let mx = x(shard_move.time);
            let _ = write!(
                page,
                r##"<path d="M{mx:.1},{:.1} l4,6 l-8,0 z" fill="#1565c0"><title>shard {} moved {} -> {}</title></path>"##,
                top + 30.0,
                shard_move.shard,
                esc(&shard_move.from),
                esc(&shard_move.to)
            );
        }
        for event in history.iter().filter(|e| {
            e.kind == EventKind::Invoke && e.node == *node && flagged.contains(&e.index)
        }) {
            let _ = write!(
                page,
                r#"<circle id="op-{}" class="violating" cx="{:.1}" cy="{:.1}" r="4" fill="black"><title>violating op {} {:?} {}</title></circle>"#,
                event.index,
                x(event.time),
                top + 20.0,
                event.index,
                event.f,
                esc(event.key())
            );
        }
        page.push_str("</g>");
    }
    page.push_str("</svg>");
    render_series(&mut page, series, record, &x);
    render_details(&mut page, verdict, record);
    page.push_str("</body></html>\n");
    page
}

fn render_series(page: &mut String, series: &[Second], record: &RunRecord, x: &dyn Fn(u64) -> f64) {
    page.push_str("<h2>Throughput, errors and latency per second</h2>");
    let height = 120.0;
    let max_ops = series
        .iter()
        .map(|s| s.ok.max(s.fail + s.info))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_ms = series.iter().map(|s| s.p99_ms).fold(1.0_f64, f64::max);
    let at = |s: &Second| x(record.workload_start + s.second * 1_000_000_000);
    for (title, id) in [
        ("operations/s (ok, errors)", "throughput"),
        ("latency ms (p50, p99)", "latency"),
    ] {
        let _ = write!(
            page,
            r##"<div>{title}</div><svg id="{id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"><rect x="{LEFT}" y="0" width="{:.1}" height="{height}" fill="#fafafa"/>"##,
            WIDTH - LEFT - 10.0
        );
        /// A line: its colour, its value per second and the top of its scale.
        type Line = (&'static str, fn(&Second) -> f64, f64);
        let lines: [Line; 2] = if id == "throughput" {
            [
                ("#2e7d32", |s| s.ok as f64, max_ops),
                ("#c62828", |s| (s.fail + s.info) as f64, max_ops),
            ]
        } else {
            [
                ("#1565c0", |s| s.p50_ms, max_ms),
                ("#6a1b9a", |s| s.p99_ms, max_ms),
            ]
        };
        for (color, value, max) in lines {
            let points: Vec<String> = series
                .iter()
                .map(|s| {
                    format!(
                        "{:.1},{:.1}",
                        at(s),
                        height - 5.0 - value(s) / max * (height - 15.0)
                    )
                })
                .collect();
            let _ = write!(
                page,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                points.join(" ")
            );
        }
        let _ = write!(
            page,
            r#"<text x="4" y="12" font-size="10">{:.0}</text><text x="4" y="{:.0}" font-size="10">0</text></svg>"#,
            if id == "throughput" { max_ops } else { max_ms },
            height - 4.0
        );
    }
}

fn render_details(page: &mut String, verdict: &Verdict, record: &RunRecord) {
    page.push_str("<h2>Verdict</h2>");
    let lin = &verdict.linearizability;
    let _ = write!(
        page,
        "<p>linearizability: {} operations on {} keys checked in {:.1} ms ({} unknown outcomes resolved from the store); {} violating keys; {} keys unknown (budget)</p>",
        lin.operations,
        lin.keys,
        lin.elapsed_ms,
        lin.resolved_from_store,
        lin.violations.len(),
        lin.unknown_keys.len()
    );
    if !lin.violations.is_empty() {
        page.push_str("<table><tr><th>key</th><th>model</th><th>op</th><th>f</th><th>value</th><th>node</th><th>invoked s</th><th>completed s</th><th>role</th></tr>");
        for violation in &lin.violations {
            let rows = std::iter::once((&violation.blocking, "cannot be linearized")).chain(
                violation
                    .candidates
                    .iter()
                    .map(|c| (c, "pending candidate")),
            );
            for (op, role) in rows {
                let secs = |t: u64| {
                    format!(
                        "{:.3}",
                        t.saturating_sub(record.workload_start) as f64 / 1e9
                    )
                };
                let _ = write!(
                    page,
                    r##"<tr class="violating"><td>{}</td><td>{}</td><td><a href="#op-{}">{}</a></td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{role}</td></tr>"##,
                    esc(&violation.key),
                    violation.model,
                    op.index,
                    op.index,
                    op.f,
                    esc(&format!(
                        "{:?} {}",
                        op.value,
                        op.result.map_or(String::new(), |r| format!("-> {r}"))
                    )),
                    esc(&op.node),
                    secs(op.invoked),
                    op.completed.map_or("?".into(), secs)
                );
            }
        }
        page.push_str("</table>");
    }
    if !verdict.store.is_empty() {
        page.push_str("<h3>Store</h3><ul>");
        for violation in verdict.store.iter().take(50) {
            let _ = write!(
                page,
                "<li class=\"violating\">{}</li>",
                esc(&serde_json::to_string(violation).unwrap_or_default())
            );
        }
        page.push_str("</ul>");
    }
    if !verdict.writes.is_empty() {
        page.push_str("<h3>Writes</h3><ul>");
        for write in verdict.writes.iter().take(50) {
            let _ = write!(
                page,
                "<li class=\"violating\">{} op {} ({}, tag {})</li>",
                esc(&write.problem),
                write.op.index,
                esc(&write.op.key),
                esc(&write.tag)
            );
        }
        page.push_str("</ul>");
    }
    let recovery = &verdict.recovery;
    let _ = write!(
        page,
        "<p>recovery after the last fault: worst {} (bound {} ms), {} late keys</p>",
        recovery
            .worst_ms
            .map_or("n/a".into(), |ms| format!("{ms} ms")),
        recovery.bound_ms,
        recovery.late.len()
    );
    page.push_str("<h3>Faults</h3><ul>");
    for fault in &record.faults {
        let secs = |t: u64| {
            format!(
                "{:.1}s",
                t.saturating_sub(record.workload_start) as f64 / 1e9
            )
        };
        let _ = write!(
            page,
            "<li>{} from {} to {}</li>",
            esc(&fault.text),
            secs(fault.start),
            fault.end.map_or("the end".into(), secs)
        );
    }
    page.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::checker::{check, CheckSettings};
    use crate::experiment::runner::{FaultSpan, NodeEvent, RunRecord};

    fn event(index: u64, kind: EventKind, value: Option<i64>, time: u64, node: &str) -> Event {
        use crate::experiment::history::{Function, Value};
        Event {
            index,
            kind,
            f: Function::Read,
            value: ("c-1".into(), value.map_or(Value::Nil, Value::Int)),
            process: index / 2,
            time,
            node: node.into(),
            tag: None,
            result: None,
            error: None,
        }
    }

    #[test]
    fn the_page_has_a_lane_per_node_the_verdict_and_links_to_violations() {
        let s = 1_000_000_000;
        let history = vec![
            event(0, EventKind::Invoke, None, s, "n1"),
            event(1, EventKind::Ok, Some(0), s + 5, "n1"),
            event(2, EventKind::Invoke, None, 2 * s, "n2"),
            event(3, EventKind::Ok, Some(7), 2 * s + 5, "n2"),
        ];
        let verdict = check(&history, None, &CheckSettings::default()).unwrap();
        assert!(!verdict.valid);
        let record = RunRecord {
            scenario: "demo".into(),
            description: "a <test>".into(),
            seed: 1,
            nodes: vec!["n1".into(), "n2".into()],
            workload_start: 0,
            workload_end: 3 * s,
            last_heal: Some(2 * s),
            faults: vec![FaultSpan {
                start: s,
                end: Some(2 * s),
                text: "partition n1 | n2".into(),
                nodes: vec!["n1".into(), "n2".into()],
            }],
            node_events: vec![NodeEvent {
                time: s,
                node: "n2".into(),
                what: "paused".into(),
            }],
            shard_moves: Vec::new(),
            samples: Vec::new(),
        };
        let html = render_html(&record, &history, &verdict, &series(&history, 0));
        assert_eq!(html.matches(r#"class="lane""#).count(), 2);
        assert!(html.contains(r#"id="verdict" class="invalid""#));
        assert!(html.contains(r##"href="#op-2""##) && html.contains(r#"id="op-2""#));
        assert!(html.contains(r#"class="fault""#) && html.contains(r#"class="paused""#));
        assert!(html.contains("a &lt;test&gt;"), "escaped");
        assert!(!html.contains("<script"), "no script");
    }

    #[test]
    fn series_counts_per_second() {
        let s = 1_000_000_000;
        let history = vec![
            event(0, EventKind::Invoke, None, 0, "n1"),
            event(1, EventKind::Ok, Some(0), s / 2, "n1"),
            event(2, EventKind::Invoke, None, s, "n1"),
            event(3, EventKind::Info, None, 2 * s + 1, "n1"),
        ];
        let series = series(&history, 0);
        assert_eq!(series.len(), 3);
        assert_eq!((series[0].ok, series[0].p50_ms), (1, 500.0));
        assert_eq!((series[1].ok, series[1].info), (0, 0));
        assert_eq!(series[2].info, 1);
    }
}

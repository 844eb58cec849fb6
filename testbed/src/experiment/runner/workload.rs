//! The clients and the history they record.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::http::HttpClient;
use crate::experiment::demo::{OpAnswer, OpError};
use crate::experiment::history::{Event, EventKind, Function, Value};
use crate::experiment::scenario::Workload;

/// The history being recorded, and running totals for the progress line.
pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

/// Totals of completed operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// `ok`.
    pub ok: u64,
    /// `fail`.
    pub fail: u64,
    /// `info`.
    pub info: u64,
}

impl Recorder {
    /// An empty history whose times count from `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            events: Mutex::new(Vec::new()),
        }
    }

    /// Appends an event, stamping its index and time.
    fn push(&self, mut event: Event) -> Event {
        let mut events = mesh::sync::lock(&self.events);
        event.index = events.len() as u64;
        event.time = self.start.elapsed().as_nanos() as u64;
        events.push(event.clone());
        event
    }

    /// Completed operations so far.
    pub fn totals(&self) -> Totals {
        let events = mesh::sync::lock(&self.events);
        let mut totals = Totals::default();
        for event in events.iter() {
            match event.kind {
                EventKind::Ok => totals.ok += 1,
                EventKind::Fail => totals.fail += 1,
                EventKind::Info => totals.info += 1,
                EventKind::Invoke => {}
            }
        }
        totals
    }

    /// The history, with an `info` for every operation still open.
    pub fn finish(&self) -> Vec<Event> {
        let mut events = mesh::sync::lock(&self.events);
        let mut open: BTreeMap<u64, Event> = BTreeMap::new();
        for event in events.iter() {
            if event.kind == EventKind::Invoke {
                open.insert(event.process, event.clone());
            } else {
                open.remove(&event.process);
            }
        }
        let time = self.start.elapsed().as_nanos() as u64;
        for (_, invoke) in open {
            let index = events.len() as u64;
            events.push(Event {
                index,
                kind: EventKind::Info,
                time,
                error: Some("still open when the run ended".into()),
                ..invoke
            });
        }
        events.clone()
    }
}

/// One client task's identity and settings.
pub struct Client {
    /// Its first process number (later ones after an `info`).
    pub id: u64,
    /// Clients in the run (the stride of process numbers).
    pub stride: u64,
    /// The node it talks to.
    pub node: String,
    /// That node's HTTP address.
    pub addr: SocketAddr,
    /// The workload.
    pub workload: Workload,
    /// Seed of its choices.
    pub seed: u64,
}

/// What to send.
struct Planned {
    f: Function,
    key: String,
    arg: Value,
    tag: Option<String>,
}

impl Client {
    /// Runs operations until `stop` turns true; waits while `ready` is false
    /// (a node that has not joined yet).
    pub async fn run(
        self,
        recorder: Arc<Recorder>,
        mut stop: watch::Receiver<bool>,
        ready: impl Fn() -> bool,
    ) {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ self.id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut http = HttpClient::new(self.addr);
        let mut process = self.id;
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        let mut n = 0u64;
        while !*stop.borrow() {
            if !ready() {
                if tokio::time::timeout(Duration::from_millis(100), stop.changed())
                    .await
                    .is_ok_and(|changed| changed.is_err())
                {
                    return;
                }
                continue;
            }
            let planned = self.plan(&mut rng, &seen, process, n);
            n += 1;
            let outcome = self
                .execute(&mut http, &recorder, process, planned, &mut seen)
                .await;
            let pause = match outcome {
                EventKind::Info => {
                    process += self.stride;
                    self.workload.interval + Duration::from_millis(100)
                }
                EventKind::Fail => self.workload.interval + Duration::from_millis(50),
                _ => self.workload.interval,
            };
            if tokio::time::timeout(pause, stop.changed()).await.is_ok() {
                continue;
            }
        }
    }

    fn plan(
        &self,
        rng: &mut StdRng,
        seen: &BTreeMap<String, i64>,
        process: u64,
        n: u64,
    ) -> Planned {
        let w = &self.workload;
        let pick = rng.gen_range(0..w.counters + w.registers);
        let tag = Some(format!("p{process}-{n}"));
        let roll = rng.gen_range(0..100);
        if pick < w.counters {
            let key = format!("c-{pick}");
            if roll < 60 {
                Planned {
                    f: Function::Add,
                    key,
                    arg: Value::Int(rng.gen_range(1..=5)),
                    tag,
                }
            } else {
                Planned {
                    f: Function::Read,
                    key,
                    arg: Value::Nil,
                    tag: None,
                }
            }
        } else {
            let key = format!("r-{}", pick - w.counters);
            let to = rng.gen_range(0..20);
            match roll {
                0..30 => Planned {
                    f: Function::Write,
                    key,
                    arg: Value::Int(to),
                    tag,
                },
                30..70 => {
                    let from = seen.get(&key).copied().unwrap_or(0);
                    Planned {
                        f: Function::Cas,
                        key,
                        arg: Value::Pair([from, to]),
                        tag,
                    }
                }
                _ => Planned {
                    f: Function::Read,
                    key,
                    arg: Value::Nil,
                    tag: None,
                },
            }
        }
    }

    fn path(planned: &Planned) -> (Method, String) {
        let tag = planned.tag.as_deref().unwrap_or_default();
        let key = &planned.key;
        match (planned.f, planned.arg) {
            (Function::Add, Value::Int(d)) => {
                (Method::POST, format!("/kv/{key}/add?delta={d}&tag={tag}"))
            }
            (Function::Write, Value::Int(v)) => {
                (Method::POST, format!("/kv/{key}/write?value={v}&tag={tag}"))
            }
            (Function::Cas, Value::Pair([from, to])) => (
                Method::POST,
                format!("/kv/{key}/cas?from={from}&to={to}&tag={tag}"),
            ),
            _ => (Method::GET, format!("/kv/{key}")),
        }
    }

    /// One operation, retried once (same tag) while its outcome is unknown.
    async fn execute(
        &self,
        http: &mut HttpClient,
        recorder: &Recorder,
        process: u64,
        planned: Planned,
        seen: &mut BTreeMap<String, i64>,
    ) -> EventKind {
        let invoke = recorder.push(Event {
            index: 0,
            kind: EventKind::Invoke,
            f: planned.f,
            value: (planned.key.clone(), planned.arg),
            process,
            time: 0,
            node: self.node.clone(),
            tag: planned.tag.clone(),
            result: None,
            error: None,
        });
        let (method, path) = Self::path(&planned);
        let mut uncertain = false;
        let mut last_error = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let answer = http
                .request(method.clone(), &path, self.workload.timeout)
                .await;
            let (kind, value, result, error) = match answer {
                Ok((StatusCode::OK, body)) => match serde_json::from_slice::<OpAnswer>(&body) {
                    Ok(answer) => {
                        seen.insert(planned.key.clone(), answer.value);
                        match planned.f {
                            Function::Read => (EventKind::Ok, Value::Int(answer.value), None, None),
                            Function::Add => (EventKind::Ok, planned.arg, Some(answer.value), None),
                            Function::Cas if !answer.applied => (
                                if uncertain {
                                    EventKind::Info
                                } else {
                                    EventKind::Fail
                                },
                                planned.arg,
                                None,
                                Some(format!("mismatch: value was {}", answer.value)),
                            ),
                            _ => (EventKind::Ok, planned.arg, None, None),
                        }
                    }
                    Err(error) => {
                        uncertain = true;
                        last_error = format!("unreadable answer: {error}");
                        continue;
                    }
                },
                Ok((status, body)) => {
                    let refusal: Option<OpError> = serde_json::from_slice(&body).ok();
                    let surely_not = status.is_client_error()
                        || refusal.as_ref().is_some_and(|r| r.outcome == "fail");
                    last_error = refusal.map_or_else(|| status.to_string(), |r| r.error);
                    if surely_not && !uncertain {
                        (EventKind::Fail, planned.arg, None, Some(last_error.clone()))
                    } else {
                        uncertain = true;
                        continue;
                    }
                }
                Err(error) => {
                    last_error = error.to_string();
                    if error.never_sent() && !uncertain {
                        (EventKind::Fail, planned.arg, None, Some(last_error.clone()))
                    } else {
                        uncertain = true;
                        continue;
                    }
                }
            };
            recorder.push(Event {
                kind,
                value: (planned.key.clone(), value),
                result,
                error,
                ..invoke.clone()
            });
            return kind;
        }
        recorder.push(Event {
            kind: EventKind::Info,
            error: Some(last_error),
            ..invoke
        });
        EventKind::Info
    }
}

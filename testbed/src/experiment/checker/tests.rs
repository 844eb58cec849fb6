//! Each check fails on a crafted bad history and passes on a good one.

use super::*;

/// Builds histories by hand: one call per operation, in time order.
#[derive(Default)]
struct Builder {
    events: Vec<Event>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        process: u64,
        f: Function,
        key: &str,
        arg: Value,
        outcome: EventKind,
        done: Value,
        result: Option<i64>,
        at: (u64, u64),
    ) -> &mut Self {
        let tag = (f != Function::Read).then(|| format!("p{process}-{}", self.events.len()));
        let base = Event {
            index: 0,
            kind: EventKind::Invoke,
            f,
            value: (key.to_string(), arg),
            process,
            time: at.0,
            node: "n1".into(),
            tag,
            result: None,
            error: None,
        };
        let completion = Event {
            kind: outcome,
            value: (key.to_string(), done),
            time: at.1,
            result,
            ..base.clone()
        };
        self.events.push(base);
        self.events.push(completion);
        self
    }

    fn add(&mut self, p: u64, key: &str, delta: i64, result: i64, at: (u64, u64)) -> &mut Self {
        self.op(
            p,
            Function::Add,
            key,
            Value::Int(delta),
            EventKind::Ok,
            Value::Int(delta),
            Some(result),
            at,
        )
    }

    fn read(&mut self, p: u64, key: &str, seen: i64, at: (u64, u64)) -> &mut Self {
        self.op(
            p,
            Function::Read,
            key,
            Value::Nil,
            EventKind::Ok,
            Value::Int(seen),
            None,
            at,
        )
    }

    /// Sorted by time (invokes and completions interleave), then indexed.
    fn build(&self) -> Vec<Event> {
        let mut events = self.events.clone();
        events.sort_by_key(|e| (e.time, e.kind != EventKind::Invoke));
        for (i, e) in events.iter_mut().enumerate() {
            e.index = i as u64;
        }
        events
    }

    fn tags(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e.kind == EventKind::Ok && e.tag.is_some())
            .map(|e| (e.key().to_string(), e.tag.clone().unwrap_or_default()))
            .collect()
    }
}

fn record(seq: u64, value: i64, instance: &str, tag: &str) -> StoreRecord {
    StoreRecord {
        seq,
        value,
        instance: instance.into(),
        f: Function::Add,
        tag: tag.into(),
    }
}

/// A store holding exactly the acknowledged writes of `b`, one instance.
fn faithful_store(b: &Builder) -> BTreeMap<String, Vec<StoreRecord>> {
    let mut store: BTreeMap<String, Vec<StoreRecord>> = BTreeMap::new();
    for (key, tag) in b.tags() {
        let records = store.entry(key).or_default();
        let seq = records.len() as u64 + 1;
        records.push(record(seq, 0, "n1#1/0", &tag));
    }
    store
}

fn good() -> Builder {
    let mut b = Builder::default();
    b.add(0, "c-1", 1, 1, (0, 10))
        .add(1, "c-1", 2, 3, (5, 15))
        .read(0, "c-1", 3, (20, 30))
        .add(2, "c-2", 5, 5, (20, 40))
        .read(1, "c-2", 5, (50, 60));
    b
}

#[test]
fn a_good_history_passes_every_check() {
    let b = good();
    let settings = CheckSettings {
        last_heal: Some(0),
        ..CheckSettings::default()
    };
    let verdict = check(&b.build(), Some(&faithful_store(&b)), &settings).unwrap();
    assert!(verdict.valid, "{}", verdict.summary);
    assert_eq!(verdict.linearizability.keys, 2);
    assert_eq!(verdict.linearizability.operations, 5);
    assert!(verdict.violating_events.is_empty());
    assert!(verdict.summary.starts_with("valid"), "{}", verdict.summary);
}

#[test]
fn a_lost_update_is_not_linearizable_and_names_its_operations() {
    let mut b = good();
    // Two writers both added to 3 on c-1, each answering 4.
    b.add(3, "c-1", 1, 4, (40, 50))
        .add(4, "c-1", 1, 4, (45, 55));
    let verdict = check(
        &b.build(),
        Some(&faithful_store(&b)),
        &CheckSettings::default(),
    )
    .unwrap();
    assert!(!verdict.valid);
    let violation = &verdict.linearizability.violations[0];
    assert_eq!(violation.key, "c-1");
    assert_eq!(violation.model, "counter");
    assert!(!verdict.violating_events.is_empty());
    assert!(
        verdict.summary.contains("not linearizable"),
        "{}",
        verdict.summary
    );
}

#[test]
fn an_info_write_may_or_may_not_apply_but_not_halfway() {
    let mut b = Builder::default();
    b.op(
        0,
        Function::Write,
        "r-1",
        Value::Int(7),
        EventKind::Info,
        Value::Int(7),
        None,
        (0, 5),
    )
    .read(1, "r-1", 0, (10, 11))
    .read(1, "r-1", 7, (12, 13));
    let verdict = check(&b.build(), None, &CheckSettings::default()).unwrap();
    assert!(verdict.valid, "{}", verdict.summary);
    b.read(1, "r-1", 0, (14, 15));
    let verdict = check(&b.build(), None, &CheckSettings::default()).unwrap();
    assert!(!verdict.valid);
    assert_eq!(verdict.linearizability.violations[0].model, "cas-register");
}

#[test]
fn a_failed_cas_is_dropped_and_an_applied_one_checked() {
    let mut b = Builder::default();
    let cas = |b: &mut Builder, p, from, to, outcome, at| {
        b.op(
            p,
            Function::Cas,
            "r-2",
            Value::Pair([from, to]),
            outcome,
            Value::Pair([from, to]),
            None,
            at,
        );
    };
    cas(&mut b, 0, 0, 1, EventKind::Ok, (0, 5));
    cas(&mut b, 1, 0, 2, EventKind::Fail, (6, 8));
    b.read(0, "r-2", 1, (10, 12));
    let verdict = check(&b.build(), None, &CheckSettings::default()).unwrap();
    assert!(verdict.valid, "{}", verdict.summary);
    // Both sides of a split applied a cas from 0.
    cas(&mut b, 1, 0, 2, EventKind::Ok, (13, 14));
    let verdict = check(&b.build(), None, &CheckSettings::default()).unwrap();
    assert!(!verdict.valid);
}

#[test]
fn store_gap_duplicate_and_interleaving_are_each_found() {
    let clean = BTreeMap::from([(
        "c-1".to_string(),
        vec![
            record(1, 1, "a", "t1"),
            record(2, 2, "a", "t2"),
            record(3, 3, "b", "t3"),
        ],
    )]);
    assert!(check_store(&clean).is_empty());

    let gap = BTreeMap::from([(
        "c-1".to_string(),
        vec![record(1, 1, "a", "t1"), record(3, 2, "a", "t2")],
    )]);
    assert_eq!(
        check_store(&gap),
        vec![StoreViolation::SequenceGap {
            key: "c-1".into(),
            after: 1,
            next: 3
        }]
    );

    let duplicate = BTreeMap::from([(
        "c-1".to_string(),
        vec![
            record(1, 1, "a", "t1"),
            record(2, 2, "a", "t2"),
            record(2, 2, "b", "t3"),
        ],
    )]);
    let found = check_store(&duplicate);
    assert!(
        matches!(&found[0], StoreViolation::DuplicateSequence { seq: 2, instances, .. } if instances == &["a", "b"]),
        "{found:?}"
    );

    let interleaved = BTreeMap::from([(
        "c-1".to_string(),
        vec![
            record(1, 1, "a", "t1"),
            record(2, 2, "b", "t2"),
            record(3, 3, "a", "t3"),
        ],
    )]);
    assert_eq!(
        check_store(&interleaved),
        vec![StoreViolation::InterleavedInstances {
            key: "c-1".into(),
            instance: "a".into(),
            other: "b".into(),
            seq: 3,
            tag: "t3".into()
        }]
    );
}

#[test]
fn a_store_violation_makes_the_verdict_invalid_and_flags_the_write() {
    let b = good();
    let mut store = faithful_store(&b);
    let first = store["c-1"][0].clone();
    store.get_mut("c-1").unwrap().push(StoreRecord {
        instance: "n2#2/0".into(),
        ..first
    });
    let events = b.build();
    let verdict = check(&events, Some(&store), &CheckSettings::default()).unwrap();
    assert!(!verdict.valid);
    assert!(
        verdict.summary.contains("written twice"),
        "{}",
        verdict.summary
    );
    assert!(!verdict.violating_events.is_empty());
}

#[test]
fn an_acknowledged_write_missing_from_the_store_is_lost() {
    let b = good();
    let mut store = faithful_store(&b);
    store.get_mut("c-2").unwrap().clear();
    let verdict = check(&b.build(), Some(&store), &CheckSettings::default()).unwrap();
    assert!(!verdict.valid);
    assert_eq!(verdict.writes.len(), 1);
    assert_eq!(verdict.writes[0].problem, "acknowledged-but-lost");
    assert_eq!(verdict.writes[0].op.key, "c-2");
}

#[test]
fn a_failed_write_found_in_the_store_was_applied() {
    let mut b = good();
    b.op(
        5,
        Function::Add,
        "c-2",
        Value::Int(1),
        EventKind::Fail,
        Value::Int(1),
        None,
        (70, 80),
    );
    let mut store = faithful_store(&b);
    let tag = b.events.last().unwrap().tag.clone().unwrap();
    store
        .get_mut("c-2")
        .unwrap()
        .push(record(2, 6, "n1#1/0", &tag));
    let verdict = check(&b.build(), Some(&store), &CheckSettings::default()).unwrap();
    assert_eq!(verdict.writes.len(), 1);
    assert_eq!(verdict.writes[0].problem, "failed-but-applied");
}

#[test]
fn recovery_is_late_when_a_key_answers_after_the_bound_or_never() {
    let ms = 1_000_000;
    let mut b = Builder::default();
    b.add(0, "c-1", 1, 1, (0, ms))
        .add(0, "c-1", 1, 2, (1000 * ms, 1200 * ms)) // 200 ms after the heal
        .add(1, "c-2", 1, 1, (1000 * ms, 4000 * ms)); // 3 s after it
    let settings = CheckSettings {
        last_heal: Some(1000 * ms),
        recovery_bound: Duration::from_secs(1),
        end: 10_000 * ms,
        ..CheckSettings::default()
    };
    let verdict = check(&b.build(), None, &settings).unwrap();
    assert!(!verdict.valid);
    assert_eq!(verdict.recovery.late, vec![("c-2".to_string(), Some(3000))]);
    assert_eq!(verdict.recovery.worst_ms, Some(3000));

    let mut silent = Builder::default();
    silent.op(
        0,
        Function::Read,
        "c-3",
        Value::Nil,
        EventKind::Info,
        Value::Nil,
        None,
        (1500 * ms, 2000 * ms),
    );
    let verdict = check(&silent.build(), None, &settings).unwrap();
    assert_eq!(verdict.recovery.late, vec![("c-3".to_string(), None)]);

    let relaxed = CheckSettings {
        recovery_bound: Duration::from_secs(5),
        ..settings
    };
    let verdict = check(&b.build(), None, &relaxed).unwrap();
    assert!(verdict.valid, "{}", verdict.summary);
}

#[test]
fn a_malformed_history_is_an_error() {
    let mut events = good().build();
    events.remove(0);
    assert!(matches!(
        check(&events, None, &CheckSettings::default()),
        Err(ExperimentError::MalformedHistory(_))
    ));
}

#[test]
fn the_store_resolves_writes_of_unknown_outcome() {
    // An add whose answer was lost, then a read that saw it.
    let mut b = Builder::default();
    b.op(
        0,
        Function::Add,
        "c-9",
        Value::Int(3),
        EventKind::Info,
        Value::Int(3),
        None,
        (0, 5),
    )
    .read(1, "c-9", 3, (10, 11));
    let tag = b.events[0].tag.clone().unwrap();
    let stored = BTreeMap::from([("c-9".to_string(), vec![record(1, 3, "a", &tag)])]);
    let verdict = check(&b.build(), Some(&stored), &CheckSettings::default()).unwrap();
    assert!(verdict.valid, "{}", verdict.summary);
    assert_eq!(verdict.linearizability.resolved_from_store, 1);

    // Not in the store: it never happened, so the read cannot have seen it.
    let empty = BTreeMap::from([("c-9".to_string(), Vec::new())]);
    let verdict = check(&b.build(), Some(&empty), &CheckSettings::default()).unwrap();
    assert!(!verdict.valid);
    assert_eq!(verdict.linearizability.violations[0].key, "c-9");

    // Stored with another value than the one read: not linearizable either.
    let other = BTreeMap::from([("c-9".to_string(), vec![record(1, 4, "a", &tag)])]);
    let verdict = check(&b.build(), Some(&other), &CheckSettings::default()).unwrap();
    assert!(!verdict.linearizability.violations.is_empty());
}

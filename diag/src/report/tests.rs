//! The model and `docs/report-schema.json` agree, field by field and value by value.

use super::fixture::sample;
use crate::model::{Confidence, Layer};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/report-schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn errors(instance: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::new(&schema()).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn a_report_with_every_field_filled_is_valid() {
    let report = serde_json::to_value(sample()).unwrap();
    assert_eq!(errors(&report), Vec::<String>::new());
}

#[test]
fn the_schema_rejects_what_the_model_cannot_produce() {
    let good = serde_json::to_value(sample()).unwrap();
    let broken = [
        ("/failures/0/layer", Value::from("kernel")),
        ("/failures/0/confidence", Value::from("sure")),
        ("/failures/0/errno", Value::from("13")),
        ("/findings/0/failures/0", Value::from(-1)),
        ("/schema", Value::from("diag.report/v2")),
        ("/failures/0/typo_field", Value::from(1)),
    ];
    for (pointer, value) in broken {
        let mut r = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match r.pointer_mut(parent).unwrap() {
            Value::Object(o) => {
                o.insert(key.into(), value);
            }
            Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
            _ => unreachable!(),
        }
        assert!(!errors(&r).is_empty(), "{pointer} accepted");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("findings");
    assert!(
        !errors(&missing).is_empty(),
        "a report without findings accepted"
    );
    let mut extra = good;
    extra
        .as_object_mut()
        .unwrap()
        .insert("added_in_v1_later".into(), Value::from(true));
    assert_eq!(
        errors(&extra),
        Vec::<String>::new(),
        "the top level is open"
    );
}

#[test]
fn the_schema_enums_are_the_vocabulary() {
    let s = schema();
    let names = |pointer: &str| -> Vec<String> {
        s.pointer(pointer)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let layers: Vec<String> = Layer::ALL.iter().map(|l| l.as_str().to_string()).collect();
    assert_eq!(names("/$defs/layer/enum"), layers);
    let confidences: Vec<String> = [
        Confidence::Direct,
        Confidence::Inferred,
        Confidence::Unknown,
    ]
    .iter()
    .map(|c| c.as_str().to_string())
    .collect();
    assert_eq!(names("/$defs/confidence/enum"), confidences);
    assert_eq!(
        s.pointer("/properties/schema/const").unwrap(),
        super::model::SCHEMA
    );
}

#[test]
fn a_fingerprint_ignores_pids_times_counts_and_numbered_paths() {
    use super::build::fingerprint;
    let r = sample();
    let f = &r.findings[0];
    let mut failures = r.failures.clone();
    let base = fingerprint(f, &failures);
    assert_eq!(base.len(), 16);
    failures[0].pid += 100;
    failures[0].tid += 100;
    failures[0].first_ns += 5_000;
    failures[0].count = 9;
    assert_eq!(fingerprint(f, &failures), base, "pids, times and counts");
    let numbered = |n: &str| crate::model::Text::from(format!("/dev/pts/{n}").as_str());
    failures[0].path = Some(numbered("3"));
    let pts3 = fingerprint(f, &failures);
    failures[0].path = Some(numbered("17"));
    assert_eq!(fingerprint(f, &failures), pts3, "/dev/pts/N");
    failures[0].errno = "EPERM".into();
    assert_ne!(
        fingerprint(f, &failures),
        pts3,
        "another errno is another failure"
    );
    let mut other = f.clone();
    other.cause = "file-denied".into();
    assert_ne!(fingerprint(&other, &failures), fingerprint(f, &failures));
}

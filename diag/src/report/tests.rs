//! The model and `docs/report-schema.json` agree, field by field and value by value; an older
//! copy of the v1 schema still reads a newer report.

use super::fixture::sample;
use super::model::{Backend, Mode};
use crate::explain::catalog;
use crate::model::{Confidence, Layer};
use serde_json::Value;

fn read_schema(relative: &str) -> Value {
    let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The published schema.
fn schema() -> Value {
    read_schema("../docs/report-schema.json")
}

/// The first published v1 schema, kept as it was.
fn first_v1_schema() -> Value {
    read_schema("tests/fixtures/schema/diag.report-v1.0.json")
}

fn errors_against(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::draft202012::new(schema).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Errors against the schema closed (every object and vocabulary), as diag's tests use it.
fn errors(instance: &Value) -> Vec<String> {
    errors_against(&super::schema::closed(schema()), instance)
}

/// `report` as a later v1 diag might write it: a new member in every object, and vocabulary
/// values (a layer, a cause, a backend) this copy of the schema has not heard of.
fn grown(report: &Value) -> Value {
    fn add_members(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.values_mut().for_each(add_members);
                o.insert("added_in_v1_later".into(), Value::from(1));
            }
            Value::Array(a) => a.iter_mut().for_each(add_members),
            _ => {}
        }
    }
    let mut r = report.clone();
    add_members(&mut r);
    r["backend"] = "kprobe-later".into();
    r["failures"][0]["layer"] = "layer-added-later".into();
    r["findings"][0]["cause"] = "cause-added-later".into();
    r["findings"][0]["ruled_out"][0]["cause"] = "another-cause-added-later".into();
    r
}

#[test]
fn an_older_v1_schema_reads_a_newer_report() {
    let report = serde_json::to_value(sample()).unwrap();
    let newer = grown(&report);
    for (name, s) in [("the first v1", first_v1_schema()), ("today's", schema())] {
        assert_eq!(errors_against(&s, &report), Vec::<String>::new(), "{name}");
        assert_eq!(errors_against(&s, &newer), Vec::<String>::new(), "{name}");
    }
    // The closed copy diag's tests use does see every addition.
    assert!(!errors(&newer).is_empty());
}

#[test]
fn the_published_schema_has_a_versioned_id_and_no_closed_object() {
    let s = schema();
    let id = s["$id"].as_str().unwrap();
    let version = super::model::SCHEMA.rsplit_once('/').unwrap().1;
    assert!(
        id.starts_with("https://") && id.ends_with(&format!("/diag.report/{version}.json")),
        "{id}"
    );
    let text = serde_json::to_string(&s).unwrap();
    assert!(
        !text.contains("\"additionalProperties\":false"),
        "a closed object"
    );
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
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("findings");
    assert!(
        !errors(&missing).is_empty(),
        "a report without findings accepted"
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
    let strings = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let layers: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
    assert_eq!(names("/$defs/layer/anyOf/0/enum"), strings(&layers));
    let modes: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
    assert_eq!(names("/$defs/mode/anyOf/0/enum"), strings(&modes));
    let backends: Vec<&str> = Backend::ALL.iter().map(|b| b.as_str()).collect();
    assert_eq!(names("/$defs/backend/anyOf/0/enum"), strings(&backends));
    let causes: Vec<&str> = catalog::builtin()
        .causes
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(names("/$defs/cause/anyOf/0/enum"), strings(&causes));
    for pointer in [
        "/properties/findings/items/properties/cause/$ref",
        "/$defs/ruled_out/properties/cause/$ref",
    ] {
        assert_eq!(s.pointer(pointer).unwrap(), "#/$defs/cause", "{pointer}");
    }
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

//! The schema as diag's own tests read it: `docs/report-schema.json` with every object closed and
//! every vocabulary closed, so the model and the schema cannot drift apart unnoticed, while the
//! published schema stays open for consumers of newer v1 reports.

use serde_json::Value;

/// `schema` with `additionalProperties: false` on every object that lists its properties, and
/// the `added_later` escape of the enums (mode, backend, layer, cause) replaced by `false`.
pub fn closed(mut schema: Value) -> Value {
    close_objects(&mut schema);
    if let Some(later) = schema.pointer_mut("/$defs/added_later") {
        *later = Value::Bool(false);
    }
    schema
}

fn close_objects(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.contains_key("properties") {
                o.insert("additionalProperties".into(), Value::Bool(false));
            }
            o.values_mut().for_each(close_objects);
        }
        Value::Array(a) => a.iter_mut().for_each(close_objects),
        _ => {}
    }
}

//! Generated docs stay in sync with their sources.

use diag::explain::{catalog, docs};

#[test]
fn causes_md_is_generated_from_the_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/causes.md");
    let on_disk = std::fs::read_to_string(path).expect("docs/causes.md");
    let generated = docs::markdown(catalog::builtin());
    assert!(
        on_disk == generated,
        "docs/causes.md is stale: run `cargo run -p diag -- catalog --markdown > docs/causes.md`"
    );
}

#[test]
fn catalog_covers_the_design_causes_and_25_cases() {
    let c = catalog::builtin();
    for id in [
        "pty-denied",
        "nproc-exhausted",
        "pids-limit",
        "threads-max",
        "seccomp-denied",
        "exec-noexec",
        "exec-denied",
        "file-denied",
        "read-only-fs",
        "userns-denied",
        "capability-missing",
        "unknown",
    ] {
        assert!(c.get(id).is_some(), "cause {id} missing");
    }
    assert!(c.case_count() >= 25, "only {} cases", c.case_count());
    for cause in &c.causes {
        for case in &cause.cases {
            assert!(
                case.source.starts_with("https://"),
                "{}: case without a citable source",
                cause.id
            );
        }
    }
}

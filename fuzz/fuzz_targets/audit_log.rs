//! Any bytes as audit records: grouping and denial decoding must never panic.
#![no_main]

use diag::capture::audit_log::{build, collect, Collected};
use diag::capture::{offline, CaptureConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = offline::check_text(data);
    let mut c = Collected::default();
    if collect(data, &mut c).is_ok() {
        let _ = build(c, &CaptureConfig::default());
    }
});

//! Any bytes as audit records: grouping and denial decoding must never panic.
#![no_main]

use diag::capture::audit_log::Stream;
use diag::capture::{offline, CaptureConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = offline::check_text(data);
    let config = CaptureConfig::default();
    let mut events = Vec::new();
    let mut stream = Stream::default();
    let mut reader = data;
    if stream.read(&mut reader, &config, &mut events).is_ok() {
        let _ = stream.finish(&config, &mut events);
    }
});

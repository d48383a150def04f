//! Any bytes as a strace log: the parser must return events or one error line, never panic.
#![no_main]

use diag::capture::strace_log::{parse, Input, Source};
use diag::capture::{offline, CaptureConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `analyze` rejects empty and binary files before parsing; parse what it would parse, and
    // the raw bytes too, since the check only sniffs the head of a file.
    let _ = offline::check_text(data);
    let input = Input {
        name: "fuzz".into(),
        pid: data.first().map(|&b| u32::from(b)),
        source: Source::Reader(Box::new(data)),
    };
    let mut events = Vec::new();
    let _ = parse(vec![input], &CaptureConfig::default(), &mut events);
});

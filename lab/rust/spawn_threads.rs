// Stand-in for rpm-ostree's tokio blocking pool: std::thread::spawn, which panics with the
// OS error when the thread cannot be created.
use std::{thread, time::Duration};

fn main() {
    let workers: Vec<_> = (0..32)
        .map(|_| thread::spawn(|| thread::sleep(Duration::from_secs(2))))
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

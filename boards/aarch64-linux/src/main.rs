//! `harness-aarch64-linux MODEL.ghnq VECTORS.ghnv [MODEL VECTORS]…`: the same validation loop
//! the microcontrollers run, as a std program for aarch64 Linux (a phone's or a board's
//! userland). Time is wall-clock nanoseconds: under qemu-user there is no instruction counter,
//! so the figure only says the harness ran, not how fast a real SoC is.

use std::process::ExitCode;
use std::time::Instant;

use firmware::{Counter, Event, Outcome, Report, Unit};

struct Clock(Instant);

impl Counter for Clock {
    fn unit(&self) -> Unit {
        Unit::Nanoseconds
    }

    fn now(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

struct Stdout;

impl Report for Stdout {
    fn event(&mut self, event: &Event<'_>) {
        println!("{event}");
    }
}

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() || !paths.len().is_multiple_of(2) {
        eprintln!(
            "usage: harness-aarch64-linux MODEL.ghnq VECTORS.ghnv [MODEL.ghnq VECTORS.ghnv]…"
        );
        return ExitCode::from(2);
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        match std::fs::read(path) {
            Ok(bytes) => files.push(bytes),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let suite: Vec<(&[u8], &[u8])> = files
        .chunks(2)
        .map(|pair| (pair[0].as_slice(), pair[1].as_slice()))
        .collect();
    // Like the firmware: one arena for the largest model (a blob that does not decode gets
    // none and is reported by the loop).
    let arena_bytes = suite
        .iter()
        .filter_map(|(blob, _)| firmware::edge_runtime::Model::from_bytes(blob).ok())
        .map(|m| m.arena_bytes())
        .max()
        .unwrap_or(0);
    let mut arena = vec![0u8; arena_bytes];
    let outcome = firmware::validate_suite(
        "aarch64-linux",
        &suite,
        &mut arena,
        &mut Clock(Instant::now()),
        &mut Stdout,
    );
    ExitCode::from(match outcome {
        Outcome::Pass => 0,
        Outcome::Disagree => 1,
        Outcome::Error => 2,
    })
}

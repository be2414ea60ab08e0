//! The stable fuzz driver (no nightly, no libFuzzer): `drive TARGET SECONDS DIR...` replays
//! every file of the corpus directories, then mutates random corpus entries (bit flips, byte
//! insertions and deletions, splices, interesting bytes) until the budget is spent. A panic
//! writes the input to `artifacts/TARGET/crash-<fnv64>` and exits 1. Prints the execution count.
//! `drive write-agent-seeds DIR` writes the agent target's binary seeds. Coverage-blind, so much weaker than `cargo fuzz run`; it is the fallback when nightly or
//! cargo-fuzz is missing.

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("write-agent-seeds") {
        let Some(dir) = args.get(1) else {
            eprintln!("usage: drive write-agent-seeds DIR");
            std::process::exit(2);
        };
        if let Err(e) = write_agent_seeds(dir) {
            eprintln!("writing agent seeds to {dir}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let usage = "usage: drive TARGET SECONDS DIR...";
    let (Some(name), Some(secs)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Some(target) = berth_fuzz::target(name) else {
        eprintln!("unknown target '{name}': one of {:?}", berth_fuzz::TARGETS);
        std::process::exit(2);
    };
    let Ok(secs) = secs.parse::<u64>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for dir in &args[2..] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                corpus.push(bytes);
            }
        }
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    // Panic messages are noise while mutating; DRIVE_VERBOSE=1 shows them (to read a crash).
    if std::env::var_os("DRIVE_VERBOSE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let run = |input: &[u8]| std::panic::catch_unwind(|| target(input)).is_ok();
    let mut execs: u64 = 0;
    for input in &corpus {
        execs += 1;
        if !run(input) {
            crash(name, input);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ secs;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let base = &corpus[(next(&mut rng) as usize) % corpus.len()];
            let other = &corpus[(next(&mut rng) as usize) % corpus.len()];
            let input = mutate(base, other, &mut rng);
            execs += 1;
            if !run(&input) {
                crash(name, &input);
            }
        }
    }
    println!("drive {name}: {execs} execs in {secs} s, corpus {} inputs, no crash", corpus.len());
}

fn write_agent_seeds(dir: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in berth_fuzz::agent_seeds() {
        std::fs::write(format!("{dir}/{name}"), bytes)?;
    }
    Ok(())
}

fn crash(name: &str, input: &[u8]) -> ! {
    let sum = input
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let dir = format!("artifacts/{name}");
    let _ = std::fs::create_dir_all(&dir);
    let path = format!("{dir}/crash-{sum:016x}");
    let _ = std::fs::write(&path, input);
    let _ = std::panic::take_hook();
    eprintln!("drive {name}: CRASH, input written to {path}");
    std::process::exit(1);
}

/// xorshift64*: fixed seed, reproducible runs.
fn next(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\",
    b"\\u0000",
    b"null",
    b"-1",
    b"0",
    b"1e999",
    b"9223372036854775808",
    b"\xff",
    b"\xc3\xa9",
    b" and ",
    b" or ",
    b"not ",
    b"==",
    b"=~",
    b" in ",
    b"(",
    b")",
    b"\n",
    b"{\"prefix\":",
    b"{\"numeric\":[\">\",",
    b"$or",
];

fn mutate(base: &[u8], other: &[u8], rng: &mut u64) -> Vec<u8> {
    let mut v = base.to_vec();
    let rounds = 1 + next(rng) % 4;
    for _ in 0..rounds {
        let pos = if v.is_empty() { 0 } else { (next(rng) as usize) % (v.len() + 1) };
        match next(rng) % 6 {
            0 if !v.is_empty() => {
                let i = pos.min(v.len() - 1);
                v[i] ^= 1 << (next(rng) % 8);
            }
            1 => v.insert(pos, next(rng) as u8),
            2 if pos < v.len() => {
                let n = 1 + (next(rng) as usize) % 8;
                v.drain(pos..(pos + n).min(v.len()));
            }
            3 => {
                let word = INTERESTING[(next(rng) as usize) % INTERESTING.len()];
                v.splice(pos..pos, word.iter().copied());
            }
            4 if !other.is_empty() => {
                let a = (next(rng) as usize) % other.len();
                let b = a + (next(rng) as usize) % (other.len() - a).min(64).max(1);
                v.splice(pos..pos, other[a..b.min(other.len())].iter().copied());
            }
            _ => {
                if pos < v.len() {
                    v.truncate(pos);
                }
            }
        }
    }
    v
}

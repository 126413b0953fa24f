//! Packs and unpacks one file and prints the time of each step, for comparing with the
//! `age` CLI on the same file: `cargo run --release -p ferry-bundle --example throughput -- FILE`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use ferry_bundle::{
    new_bundle_id, open_bundle, verify_bundle, write_bundle, BundleError, Channel, Entry,
    EntrySink, EntrySource, HeaderParams, Limits, SideKeys,
};

/// Writes entries to one output file, as an import would stage them.
struct FileSink(Option<BufWriter<File>>, std::path::PathBuf);

fn io(source: std::io::Error) -> BundleError {
    BundleError::Io {
        context: "writing the unpacked entry".to_owned(),
        source,
    }
}

impl EntrySink for FileSink {
    fn begin(&mut self, _path: &str, _len: u64) -> Result<(), BundleError> {
        let file = File::create(&self.1).map_err(io)?;
        self.0 = Some(BufWriter::with_capacity(256 * 1024, file));
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        let out = self.0.as_mut().expect("begin was called");
        out.write_all(chunk).map_err(io)
    }
    fn end(&mut self) -> Result<(), BundleError> {
        let mut out = self.0.take().expect("begin was called");
        out.flush().map_err(io)
    }
}

/// CPU seconds (user + system) used by this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Prints wall and CPU time of one step.
fn report(step: &str, wall: Instant, cpu: f64) {
    println!(
        "{step:7} {:.2} s wall, {:.2} s CPU",
        wall.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );
}

fn main() -> Result<(), BundleError> {
    let input = std::env::args().nth(1).expect("usage: throughput FILE");
    let low = SideKeys::generate();
    let high = SideKeys::generate();
    let params = HeaderParams {
        bundle_id: new_bundle_id(),
        channel: Channel::HighToLow,
        seq: 1,
        prev_hash: [0; 32],
        created_at: 0,
        expires_at: i64::MAX,
    };
    let bundle = format!("{input}.ferry");

    let (t, c) = (Instant::now(), cpu_seconds());
    let mut out = File::create(&bundle).expect("create bundle");
    let entries = [Entry {
        path: "result.bin".into(),
        source: EntrySource::File(input.as_ref()),
    }];
    // Not synced, to compare like for like with the `age` CLI, which does not sync either.
    write_bundle(&mut out, &high, &low.public(), &params, &entries)?;
    report("pack", t, c);

    let (t, c) = (Instant::now(), cpu_seconds());
    verify_bundle(File::open(&bundle).expect("open"), &high.public().signing)?;
    report("verify", t, c);

    let (t, c) = (Instant::now(), cpu_seconds());
    let mut sink = FileSink(None, format!("{input}.out").into());
    open_bundle(
        File::open(&bundle).expect("open"),
        &high.public().signing,
        &low,
        &Limits::default(),
        &mut sink,
    )?;
    report("open", t, c);
    Ok(())
}

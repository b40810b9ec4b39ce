//! `cairn stats`: figures about the data of the selected snapshots in restic's counting modes,
//! and the size of the repository's packs (restic's `stats`).

use clap::Args;

use cairn::ops::stats::{self, Mode, StatsOptions, StatsReport};
use cairn::Error;

use super::{human_bytes, out, FilterArgs, GlobalOpts, EXIT_OK};

/// Arguments of `stats`.
#[derive(Args)]
#[command(after_help = "Modes (restic's):\n  \
restore-size       entries (files, directories, symlinks, ...) and bytes a restore of each\n                     \
snapshot would write; a hard-linked file counts once per snapshot (default)\n  \
files-by-contents  regular files with distinct contents, each counted once\n  \
raw-data           the blobs the snapshots reference, each once: stored (compressed,\n                     \
encrypted) and uncompressed size, compression ratio and space saving\n  \
blobs-per-file     distinct data blobs per file path of the files with distinct contents\n\n\
Every mode also reports the bytes and number of the pack files the repository holds and its\n\
number of snapshots (--json: total_pack_size, total_pack_count, repository_snapshots_count).\n\
stats takes a shared lock: it runs beside a backup.")]
pub struct StatsArgs {
    /// Snapshots to count: `latest`, ids or unique id prefixes (default: all snapshots passing
    /// the filters)
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Counting mode
    #[arg(long, value_name = "MODE", default_value = "restore-size",
        value_parser = ["restore-size", "files-by-contents", "raw-data", "blobs-per-file"])]
    mode: String,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Count and print.
pub fn run(g: &GlobalOpts, a: &StatsArgs) -> Result<u8, Error> {
    let mode = Mode::parse(&a.mode)?;
    let repo = g.open()?;
    let lock = g.read_lock(&repo, "stats")?;
    let opts = StatsOptions { snapshots: a.snapshots.clone(), filter: a.filter.filter(), mode };
    let report = stats::stats(&g.ctx(), &lock, &repo, &opts)?;
    use super::metrics::gauge;
    gauge("cairn_repository_size_bytes", super::metrics::REPOSITORY_SIZE_HELP, &[], report.total_pack_size as f64);
    gauge("cairn_repository_packs", super::metrics::REPOSITORY_PACKS_HELP, &[], report.total_pack_count as f64);
    gauge("cairn_snapshots", super::metrics::SNAPSHOTS_HELP, &[], report.repository_snapshots_count as f64);

    if g.json {
        super::snapshots::print_json(&report)?;
    } else {
        for line in text(&report) {
            out(&line);
        }
    }
    Ok(EXIT_OK)
}

/// The report as restic prints it (labels right-aligned to 24 columns), then the repository's
/// figures.
fn text(r: &StatsReport) -> Vec<String> {
    let line = |label: &str, value: String| format!("{label:>24}:  {value}");
    let mut v = vec![format!("Stats in {} mode:", r.mode.name())];
    v.push(line("Snapshots processed", r.snapshots_count.to_string()));
    if r.total_blob_count > 0 {
        v.push(line("Total Blob Count", r.total_blob_count.to_string()));
    }
    if r.total_file_count > 0 {
        v.push(line("Total File Count", r.total_file_count.to_string()));
    }
    if r.total_uncompressed_size > 0 {
        v.push(line("Total Uncompressed Size", human_bytes(r.total_uncompressed_size)));
    }
    v.push(line("Total Size", human_bytes(r.total_size)));
    if r.compression_progress > 0.0 {
        v.push(line("Compression Progress", format!("{:.2}%", r.compression_progress)));
    }
    if r.compression_ratio > 0.0 {
        v.push(line("Compression Ratio", format!("{:.2}x", r.compression_ratio)));
    }
    if r.compression_space_saving > 0.0 {
        v.push(line("Compression Space Saving", format!("{:.2}%", r.compression_space_saving)));
    }
    v.push(line(
        "Repository Size",
        format!(
            "{} in {} packs, {} snapshots",
            human_bytes(r.total_pack_size),
            r.total_pack_count,
            r.repository_snapshots_count
        ),
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_layout() {
        let r = StatsReport {
            mode: Mode::RawData,
            total_size: 1024,
            total_uncompressed_size: 2048,
            compression_ratio: 2.0,
            compression_progress: 100.0,
            compression_space_saving: 50.0,
            total_blob_count: 3,
            snapshots_count: 1,
            total_pack_size: 4096,
            total_pack_count: 2,
            repository_snapshots_count: 4,
            ..Default::default()
        };
        assert_eq!(
            text(&r),
            [
                "Stats in raw-data mode:",
                "     Snapshots processed:  1",
                "        Total Blob Count:  3",
                " Total Uncompressed Size:  2.00 KiB",
                "              Total Size:  1.00 KiB",
                "    Compression Progress:  100.00%",
                "       Compression Ratio:  2.00x",
                "Compression Space Saving:  50.00%",
                "         Repository Size:  4.00 KiB in 2 packs, 4 snapshots",
            ]
        );
    }
}

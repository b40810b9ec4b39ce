//! Progress bars on a terminal (indicatif), fed by polling the library's atomic counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A spinner redrawn every 100 ms with a message built by `message`; stopped on drop.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Start a spinner when `enabled`; otherwise do nothing.
    pub fn start(enabled: bool, message: impl Fn() -> String + Send + 'static) -> Self {
        Ticker::start_bar(enabled, move || BarState { total: None, done: 0, message: message() })
    }
}

/// What a bar shows at one moment: `done` of `total` bytes (a spinner while `total` is not
/// known yet), and a message.
pub struct BarState {
    /// Bytes to do in all, once known.
    pub total: Option<u64>,
    /// Bytes done.
    pub done: u64,
    /// Shown after the figures.
    pub message: String,
}

impl Ticker {
    /// Start a progress display when `enabled` (otherwise do nothing), polled every 100 ms:
    /// a spinner with the message until `state` gives a total, then a bar of bytes done of
    /// the total (lengthened when the total grows) with percent and ETA (indicatif's
    /// estimate). Stopped on drop.
    pub fn start_bar(enabled: bool, state: impl Fn() -> BarState + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Ticker { stop, handle: None };
        }
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            let mut sized = false;
            let mut length = 0;
            while !s.load(Ordering::Relaxed) {
                let now = state();
                // A total that grows (a copy plans one snapshot after another) lengthens the bar.
                if let Some(total) = now.total.filter(|t| sized && *t != length) {
                    length = total;
                    bar.set_length(total);
                }
                if let (Some(total), false) = (now.total, sized) {
                    sized = true;
                    length = total;
                    bar.set_length(total);
                    bar.reset_eta();
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {percent}% ETA {eta} {msg}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                }
                if sized {
                    bar.set_position(now.done);
                }
                bar.set_message(now.message);
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Ticker { stop, handle: Some(handle) }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

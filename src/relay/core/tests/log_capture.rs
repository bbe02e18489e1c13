//! The log lines the core writes, captured per test thread: for tests about what is logged
//! at which level. The core logs synchronously on the thread that drives it, so each test
//! sees only its own lines.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LINES: RefCell<Option<Vec<(log::Level, String)>>> = const { RefCell::new(None) };
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        LINES.with(|lines| lines.borrow().is_some())
    }

    fn log(&self, record: &log::Record<'_>) {
        LINES.with(|lines| {
            if let Some(lines) = lines.borrow_mut().as_mut() {
                lines.push((record.level(), record.args().to_string()));
            }
        });
    }

    fn flush(&self) {}
}

/// Starts capturing this thread's log lines (at every level), forgetting earlier ones.
pub fn start() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Nothing else in the library's tests installs a logger.
        if log::set_logger(&Capture).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
    LINES.with(|lines| *lines.borrow_mut() = Some(Vec::new()));
}

/// The lines captured since [`start`], and forgets them.
pub fn take() -> Vec<(log::Level, String)> {
    LINES.with(|lines| lines.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default())
}

/// The lines captured since [`start`] that contain `text`, and forgets them all.
pub fn containing(text: &str) -> Vec<(log::Level, String)> {
    take().into_iter().filter(|(_, line)| line.contains(text)).collect()
}

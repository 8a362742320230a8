//! Process exit codes. One enum, so every command agrees on what a code means.

/// How `etl` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// A run failed: at least one partition did not complete.
    RunFailed = 1,
    /// Bad usage or a bad spec: nothing was attempted.
    Usage = 2,
    /// A shutdown request (Ctrl-C, SIGTERM) stopped a run before every
    /// day was done: 128 + SIGINT, as shells report it.
    Interrupted = 130,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

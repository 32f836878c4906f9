//! What the log says about answered requests. A 4xx is the client's doing: logged at `info`
//! with its status and error code. A 5xx is the server's (503 included: overload or a lost
//! quorum is for the operator to see): logged at `warn`. Either kind is limited to
//! [`LINES_PER_SECOND`] lines a second, so a misbehaving client cannot flood the log; the next
//! line after a limited second says how many were left out. Successes are not logged (the
//! request span at `debug` shows every request).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;

/// Lines a second, per kind (client errors, server errors).
pub const LINES_PER_SECOND: u64 = 10;

/// A per-second line budget.
#[derive(Debug)]
pub struct LineBudget {
    /// (the second the count is for, lines logged in it, lines left out since the last line).
    state: Mutex<(u64, u64, u64)>,
}

/// Whether to write a line, and how many were left out before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `left_out` lines were not written since the last one.
    Write { left_out: u64 },
    /// Leave it out (counted for the next line).
    LeaveOut,
}

impl Default for LineBudget {
    fn default() -> LineBudget {
        LineBudget::new()
    }
}

impl LineBudget {
    pub const fn new() -> LineBudget {
        LineBudget {
            state: Mutex::new((0, 0, 0)),
        }
    }

    /// Whether a line at `second` (any monotonic count of seconds) may be written.
    pub fn admit(&self, second: u64) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (at, written, left_out) = &mut *state;
        if *at != second {
            (*at, *written) = (second, 0);
        }
        if *written >= LINES_PER_SECOND {
            *left_out += 1;
            return Verdict::LeaveOut;
        }
        *written += 1;
        Verdict::Write {
            left_out: std::mem::take(left_out),
        }
    }
}

/// The process's budgets: client errors, server errors.
static BUDGETS: [LineBudget; 2] = [LineBudget::new(), LineBudget::new()];

/// Logs an answered request if it failed (see the module comment). `code` is the error's code
/// when the answer is featgrid's JSON error.
pub fn answered(request_id: u64, route: &str, status: StatusCode, code: Option<&str>) {
    let budget = if status.is_client_error() {
        &BUDGETS[0]
    } else if status.is_server_error() {
        &BUDGETS[1]
    } else {
        return;
    };
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Verdict::Write { left_out } = budget.admit(second) else {
        return;
    };
    let status = status.as_u16();
    let code = code.unwrap_or("");
    if status < 500 {
        tracing::info!(
            request_id,
            route,
            status,
            code,
            left_out,
            "request refused (client error)"
        );
    } else {
        tracing::warn!(
            request_id,
            route,
            status,
            code,
            left_out,
            "request failed (server error)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writes_at_most_its_budget_and_the_next_line_counts_the_rest() {
        let budget = LineBudget::new();
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(budget.admit(7), Verdict::Write { left_out: 0 });
        }
        for _ in 0..5 {
            assert_eq!(budget.admit(7), Verdict::LeaveOut);
        }
        assert_eq!(budget.admit(8), Verdict::Write { left_out: 5 });
        assert_eq!(budget.admit(8), Verdict::Write { left_out: 0 });
    }
}

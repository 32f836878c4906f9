//! `featgrid materialize`: has a running server load feature views' offline rows, drawing
//! its progress meanwhile, then prints what was loaded.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use super::args::MaterializeArgs;
use super::http;

/// Sends the materialize request on a thread of its own and, until it answers, draws the
/// progress from `GET /materialize` (in place on a terminal, every 5 s otherwise).
pub fn materialize(args: MaterializeArgs) -> ExitCode {
    use featgrid::materialize::command;
    let (path, body) = match command::request(
        &args.times,
        args.incremental,
        args.disable_event_timestamp,
        &args.views,
    ) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("featgrid materialize: {e}");
            return ExitCode::from(2);
        }
    };
    let base = args.url.trim_end_matches('/').to_string();
    let url = format!(
        "{base}{path}{}",
        if args.force { "?force=true" } else { "" }
    );
    let token = args.token.token.clone();
    let sent = std::thread::spawn({
        let token = token.clone();
        move || {
            http(
                &url,
                Some(body),
                token.as_deref(),
                Duration::from_secs(7 * 86_400),
            )
        }
    });
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = std::time::Instant::now();
    let mut drawn = false;
    while !sent.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(status) = http(
            &format!("{base}/materialize"),
            None,
            token.as_deref(),
            Duration::from_secs(5),
        ) else {
            continue;
        };
        let status = serde_json::from_slice(&status).unwrap_or_default();
        if let Some(line) = command::progress_line(&status, &args.views, started.elapsed()) {
            if terminal {
                eprint!("\r{line}");
                drawn = true;
            } else if last_line.elapsed() >= Duration::from_secs(5) {
                eprintln!("{line}");
                last_line = std::time::Instant::now();
            }
        }
    }
    if drawn {
        eprintln!();
    }
    match sent.join() {
        Ok(Ok(answer)) => {
            let answer = serde_json::from_slice(&answer).unwrap_or_default();
            print!("{}", command::summary(&answer));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("featgrid materialize: {base}{path}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

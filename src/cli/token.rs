//! `featgrid token new`: a fresh random token, and the `[[token]]` lines for the token file.

use std::process::ExitCode;

use super::args::TokenCommand;

pub fn token(command: TokenCommand) -> ExitCode {
    let TokenCommand::New {
        name,
        scopes,
        views,
    } = command;
    match featgrid::auth::tokens::new_token() {
        Ok((token, hash)) => {
            println!("token (give it to the client; it is not stored anywhere):\n{token}\n");
            println!("add to the token file (auth_tokens), then send SIGHUP or restart:\n");
            print!(
                "{}",
                featgrid::auth::tokens::file_entry(&name, &hash, &scopes, &views)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid token: {e}");
            ExitCode::FAILURE
        }
    }
}

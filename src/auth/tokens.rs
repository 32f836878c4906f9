//! The token file (`auth_tokens`, `--auth-tokens`): named bearer tokens, stored as the hex
//! SHA-256 of the secret, each with scopes and optionally the feature views it may touch.
//!
//! ```toml
//! [[token]]
//! name = "trainer"
//! sha256 = "<hex SHA-256 of the token>"
//! scopes = ["read"]
//! views = ["driver_hourly_stats"]   # optional
//! ```
//!
//! A presented token is hashed once and compared with every entry in constant time
//! (`subtle`), whatever matches first, so the time taken says nothing about the table.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rand::TryRng as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Principal, Scope, Scopes};

/// Why a token file cannot be used. Never holds a secret: only names and hashes' positions.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    token: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    sha256: String,
    scopes: Vec<String>,
    #[serde(default)]
    views: Option<Vec<String>>,
}

/// The tokens of one file, ready to check.
#[derive(Debug, Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

impl TokenTable {
    /// Reads and validates a token file.
    pub fn load(path: &Path) -> Result<TokenTable, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        TokenTable::parse(&text).map_err(|problem| TokenFileError::Invalid {
            path: path.display().to_string(),
            problem,
        })
    }

    pub fn parse(text: &str) -> Result<TokenTable, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut names = BTreeSet::new();
        let mut entries = Vec::with_capacity(file.token.len());
        for (i, entry) in file.token.into_iter().enumerate() {
            let at = format!("token {} ('{}')", i + 1, entry.name);
            if entry.name.is_empty() {
                return Err(format!("token {}: name is empty", i + 1));
            }
            if !names.insert(entry.name.clone()) {
                return Err(format!("{at}: the name is used twice"));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(entry.sha256.trim(), &mut hash).map_err(|_| {
                format!("{at}: sha256 must be 64 hex digits (the SHA-256 of the token, as `featgrid token new` prints)")
            })?;
            if entries.iter().any(|(h, _)| *h == hash) {
                return Err(format!("{at}: the same token is listed twice"));
            }
            let mut scopes = Scopes::NONE;
            for s in &entry.scopes {
                scopes = scopes.with(s.parse::<Scope>().map_err(|e| format!("{at}: {e}"))?);
            }
            if scopes == Scopes::NONE {
                return Err(format!(
                    "{at}: scopes is empty: give read, write and/or admin"
                ));
            }
            let views = entry.views.map(|v| v.into_iter().collect());
            entries.push((
                hash,
                Arc::new(Principal {
                    name: entry.name,
                    scopes,
                    views,
                }),
            ));
        }
        Ok(TokenTable { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal whose token this is, comparing against every entry in constant time.
    pub fn find(&self, token: &str) -> Option<&Arc<Principal>> {
        let presented = sha256(token);
        let mut found = None;
        for (hash, principal) in &self.entries {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(principal);
            }
        }
        found
    }
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh token (32 random bytes from the OS, hex: 64 characters, prefixed `fgt_` so a
/// leaked one is easy to search for) and its SHA-256 in hex.
pub fn new_token() -> Result<(String, String), String> {
    let mut secret = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| format!("the OS random source failed: {e}"))?;
    let token = format!("fgt_{}", hex::encode(secret));
    let hash = hex::encode(sha256(&token));
    Ok((token, hash))
}

/// The `[[token]]` lines to paste into the token file for a token with this hash.
pub fn file_entry(name: &str, hash: &str, scopes: &[Scope], views: &[String]) -> String {
    let list = |items: &mut dyn Iterator<Item = String>| {
        items
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "[[token]]\nname = {name:?}\nsha256 = \"{hash}\"\nscopes = [{}]\n",
        list(&mut scopes.iter().map(|s| s.as_str().to_string()))
    );
    if !views.is_empty() {
        out.push_str(&format!("views = [{}]\n", list(&mut views.iter().cloned())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_found_by_its_entry_and_nothing_else_is() {
        let (token, hash) = new_token().unwrap();
        assert_eq!(token.len(), 4 + 64);
        let entry = file_entry(
            "trainer",
            &hash,
            &[Scope::Read, Scope::Write],
            &["driver_hourly_stats".into()],
        );
        let table = TokenTable::parse(&entry).unwrap();
        let p = table.find(&token).expect("the new token is known");
        assert_eq!(p.name, "trainer");
        assert!(p.scopes.has(Scope::Read) && p.scopes.has(Scope::Write));
        assert!(!p.scopes.has(Scope::Admin));
        assert!(p.views.as_ref().unwrap().contains("driver_hourly_stats"));
        assert!(table.find("fgt_wrong").is_none());
        assert!(table.find("").is_none());
        assert_ne!(new_token().unwrap().0, token);
    }

    #[test]
    fn bad_files_are_refused_with_the_entry_named_and_no_secret() {
        let (_, hash) = new_token().unwrap();
        let cases = [
            ("[[token]]\nname = \"a\"\nsha256 = \"xyz\"\nscopes = [\"read\"]\n", "sha256 must be 64 hex digits"),
            (&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = [\"root\"]\n"), "'root' is not a scope"),
            (&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = []\n"), "scopes is empty"),
            (&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = [\"read\"]\n[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = [\"read\"]\n"), "used twice"),
            ("[[token]]\nname = \"a\"\nsha256 = \"00\"\nscopes = [\"read\"]\nextra = 1\n", "unknown field"),
        ];
        for (text, want) in cases {
            let e = TokenTable::parse(text).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let e = TokenTable::parse(&format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nscopes = [\"read\"]\n[[token]]\nname = \"b\"\nsha256 = \"{hash}\"\nscopes = [\"read\"]\n")).unwrap_err();
        assert!(e.contains("listed twice") && e.contains("'b'"), "{e}");
    }
}

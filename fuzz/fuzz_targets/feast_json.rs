//! Feast JSON: a `/push` body goes through the same steps as on the server (the NaN/Infinity
//! pre-pass, the borrowed-cell parse, single values repeated into columns), then every value is
//! converted to every type as a feature and as a join key. Whatever converts must render back as valid JSON.

#![no_main]

use featgrid::api::feast::{frame, json_text, PushRequest};
use featgrid::api::parse_json;
use featgrid::value::{encode_key_value, encode_value, render_json, Cell};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let text = json_text(data);
    let Ok(request) = parse_json::<PushRequest>(&text) else {
        return;
    };
    let Ok(df) = frame(request.df) else {
        return;
    };
    let types = value_types();
    for values in df.values() {
        for value in values.iter().take(32) {
            let _ = value.as_timestamp();
            let _ = value.describe();
            for &ty in &types {
                let mut stored = Vec::new();
                if encode_value(ty, value, &mut stored).is_ok() {
                    let mut json = Vec::new();
                    render_json(ty, &stored, &mut json);
                    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&json) {
                        panic!(
                            "{ty:?} rendered invalid JSON {:?}: {e}",
                            String::from_utf8_lossy(&json)
                        );
                    }
                }
                let _ = encode_key_value(ty, value, &mut Vec::new());
            }
        }
    }
});

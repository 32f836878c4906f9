//! The native wire protocol: arbitrary bytes decoded as a `NativeWrite` and a `NativeRead`; every
//! decoded value is converted to every type, and whatever converts is decoded back from its
//! stored form.

#![no_main]

use featgrid::api::native::{NativeRead, NativeWrite};
use featgrid::persist::codec;
use featgrid::value::native::NativeValue;
use featgrid::value::{encode_key_value, encode_value};
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode::<NativeRead>(data);
    let Ok((write, _)) = codec::decode::<NativeWrite>(data) else {
        return;
    };
    let types = value_types();
    for (_, values) in &write.columns {
        for value in values.iter().take(32) {
            for &ty in &types {
                let mut stored = Vec::new();
                if encode_value(ty, value, &mut stored).is_ok() {
                    let _ = NativeValue::from_stored(ty, &stored);
                }
                let _ = encode_key_value(ty, value, &mut Vec::new());
            }
        }
    }
});

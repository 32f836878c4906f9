//! The manifest (`MANIFEST.json`): the input as the file, and, when it parses as a list of
//! sets, wrapped in a manifest with the right format and checksum so the sets themselves are
//! what gets checked.

#![no_main]

use featgrid::persist::crc32c;
use featgrid::persist::manifest::{load, SetEntry, FORMAT};
use featgrid::persist::DataDir;
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    let dir = DataDir::new(scratch_dir());
    std::fs::write(dir.manifest(), data).expect("write the scratch manifest");
    let _ = load(&dir);
    if let Ok(sets) = serde_json::from_slice::<Vec<SetEntry>>(data) {
        let crc = format!(
            "{:08x}",
            crc32c(&serde_json::to_vec(&sets).expect("sets encode"))
        );
        let wrapped = serde_json::json!({"format": FORMAT, "crc32c": crc, "sets": sets});
        std::fs::write(dir.manifest(), wrapped.to_string()).expect("write the scratch manifest");
        let loaded = load(&dir).expect("a manifest with the right checksum loads");
        assert_eq!(loaded, sets);
    }
});

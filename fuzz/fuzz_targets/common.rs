// Shared by the fuzz targets (included with `include!`): the value types every value is tried
// against, and a scratch directory per fuzzing process.

/// Every scalar type and its list.
const TYPES: [&str; 16] = [
    "int32",
    "int64",
    "float32",
    "float64",
    "string",
    "bytes",
    "bool",
    "unix_timestamp",
    "list<int32>",
    "list<int64>",
    "list<float32>",
    "list<float64>",
    "list<string>",
    "list<bytes>",
    "list<bool>",
    "list<unix_timestamp>",
];

#[allow(dead_code)] // not every target converts values
fn value_types() -> Vec<featgrid::value::ValueType> {
    TYPES
        .iter()
        .map(|t| featgrid::value::ValueType::parse(t).expect("a known type"))
        .collect()
}

/// A directory of this process's own, for decoders that read files.
#[allow(dead_code)] // not every target reads files
fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // Memory-backed where there is one: the file targets write a file per input.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("featgrid-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch dir");
        dir
    })
}

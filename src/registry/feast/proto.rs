//! The parts of Feast's registry protobuf (`protos/feast/core/*.proto`, Feast 0.67) that
//! featgrid reads, as `prost` messages. Field numbers and types are Feast's; every field not
//! declared here is skipped by the decoder, so newer Feast files decode too. The messages
//! also encode, which the tests use to write registry files.

/// `feast.core.Registry`: the whole registry file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Registry {
    #[prost(message, repeated, tag = "1")]
    pub entities: Vec<Entity>,
    /// Legacy `FeatureTable`s: only counted, to say they are not served.
    #[prost(message, repeated, tag = "2")]
    pub feature_tables: Vec<Named>,
    #[prost(string, tag = "4")]
    pub version_id: String,
    #[prost(message, optional, tag = "5")]
    pub last_updated: Option<Timestamp>,
    #[prost(message, repeated, tag = "6")]
    pub feature_views: Vec<FeatureView>,
    #[prost(message, repeated, tag = "7")]
    pub feature_services: Vec<FeatureService>,
    #[prost(message, repeated, tag = "8")]
    pub on_demand_feature_views: Vec<Named>,
    #[prost(message, repeated, tag = "12")]
    pub data_sources: Vec<DataSource>,
    #[prost(message, repeated, tag = "14")]
    pub stream_feature_views: Vec<Named>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Any object whose field 1 is a spec with its name in field 1 and its project in field 2
/// (`OnDemandFeatureView`, `StreamFeatureView`, `FeatureTable`): what the startup warning
/// about objects featgrid does not serve needs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Named {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<NamedSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
}

/// `feast.core.Entity`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entity {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<EntitySpec>,
}

/// `feast.core.EntitySpecV2`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntitySpec {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `feast.types.ValueType.Enum`; 0 when the entity was declared without one.
    #[prost(int32, tag = "2")]
    pub value_type: i32,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub join_key: String,
    #[prost(string, tag = "9")]
    pub project: String,
}

/// `feast.core.FeatureSpecV2`: a feature (or entity column) and its type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `feast.types.ValueType.Enum`.
    #[prost(int32, tag = "2")]
    pub value_type: i32,
}

/// `feast.core.FeatureView`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureViewSpec>,
}

/// `feast.core.FeatureViewSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    /// Entity names.
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpec>,
    #[prost(message, optional, tag = "6")]
    pub ttl: Option<Duration>,
    #[prost(message, optional, tag = "7")]
    pub batch_source: Option<DataSource>,
    #[prost(bool, tag = "8")]
    pub online: bool,
    #[prost(message, optional, tag = "9")]
    pub stream_source: Option<DataSource>,
    #[prost(string, tag = "10")]
    pub description: String,
    /// The join-key columns with their types, as `feast apply` inferred them.
    #[prost(message, repeated, tag = "12")]
    pub entity_columns: Vec<FeatureSpec>,
    #[prost(bool, tag = "20")]
    pub disabled: bool,
}

/// `feast.core.DataSource.SourceType.PUSH_SOURCE`.
pub const PUSH_SOURCE: i32 = 9;

/// `feast.core.DataSource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSource {
    /// `SourceType`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "3")]
    pub timestamp_field: String,
    #[prost(string, tag = "5")]
    pub created_timestamp_column: String,
    #[prost(string, tag = "20")]
    pub name: String,
    #[prost(string, tag = "21")]
    pub project: String,
    #[prost(string, tag = "23")]
    pub description: String,
    /// A push source's batch source (where its timestamp columns are named).
    #[prost(message, optional, boxed, tag = "26")]
    pub batch_source: Option<Box<DataSource>>,
    /// Source column -> feature (or key, or timestamp) column.
    #[prost(map = "string, string", tag = "2")]
    pub field_mapping: std::collections::HashMap<String, String>,
    /// The Python class, e.g. `feast.infra.offline_stores.bigquery_source.BigQuerySource`.
    #[prost(string, tag = "17")]
    pub data_source_class_type: String,
    #[prost(message, optional, tag = "11")]
    pub file_options: Option<FileOptions>,
}

/// `feast.core.DataSource.SourceType.BATCH_FILE` (a `FileSource`).
pub const BATCH_FILE: i32 = 1;

/// `feast.core.DataSource.FileOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileOptions {
    #[prost(message, optional, tag = "1")]
    pub file_format: Option<FileFormat>,
    /// A path (relative to the repo, or absolute) or a URL (`s3://`, `gs://`, ...).
    #[prost(string, tag = "2")]
    pub uri: String,
    #[prost(string, tag = "3")]
    pub s3_endpoint_override: String,
}

/// `feast.core.FileFormat`: which of its `oneof format` is set (both messages are empty
/// for what featgrid needs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileFormat {
    #[prost(message, optional, tag = "1")]
    pub parquet_format: Option<Empty>,
    #[prost(message, optional, tag = "2")]
    pub delta_format: Option<Empty>,
}

/// A message whose fields featgrid does not read.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Empty {}

/// `feast.core.FeatureService`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureService {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<FeatureServiceSpec>,
}

/// `feast.core.FeatureServiceSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureServiceSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureViewProjection>,
    #[prost(string, tag = "5")]
    pub description: String,
}

/// `feast.core.FeatureViewProjection`: a view (or part of one) in a feature service.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewProjection {
    #[prost(string, tag = "1")]
    pub feature_view_name: String,
    #[prost(message, repeated, tag = "2")]
    pub feature_columns: Vec<FeatureSpec>,
    #[prost(string, tag = "3")]
    pub feature_view_name_alias: String,
    #[prost(map = "string, string", tag = "4")]
    pub join_key_map: std::collections::HashMap<String, String>,
}

/// `feast.types.ValueType.Enum` values featgrid stores.
pub mod value_type {
    pub const BYTES: i32 = 1;
    pub const STRING: i32 = 2;
    pub const INT32: i32 = 3;
    pub const INT64: i32 = 4;
    pub const DOUBLE: i32 = 5;
    pub const FLOAT: i32 = 6;
    pub const BOOL: i32 = 7;
    pub const UNIX_TIMESTAMP: i32 = 8;
    pub const BYTES_LIST: i32 = 11;
    pub const STRING_LIST: i32 = 12;
    pub const INT32_LIST: i32 = 13;
    pub const INT64_LIST: i32 = 14;
    pub const DOUBLE_LIST: i32 = 15;
    pub const FLOAT_LIST: i32 = 16;
    pub const BOOL_LIST: i32 = 17;
    pub const UNIX_TIMESTAMP_LIST: i32 = 18;

    /// Feast's name of a value type, for messages.
    pub fn name(value: i32) -> String {
        let known = [
            (0, "INVALID"),
            (BYTES, "BYTES"),
            (STRING, "STRING"),
            (INT32, "INT32"),
            (INT64, "INT64"),
            (DOUBLE, "DOUBLE"),
            (FLOAT, "FLOAT"),
            (BOOL, "BOOL"),
            (UNIX_TIMESTAMP, "UNIX_TIMESTAMP"),
            (BYTES_LIST, "BYTES_LIST"),
            (STRING_LIST, "STRING_LIST"),
            (INT32_LIST, "INT32_LIST"),
            (INT64_LIST, "INT64_LIST"),
            (DOUBLE_LIST, "DOUBLE_LIST"),
            (FLOAT_LIST, "FLOAT_LIST"),
            (BOOL_LIST, "BOOL_LIST"),
            (UNIX_TIMESTAMP_LIST, "UNIX_TIMESTAMP_LIST"),
            (19, "NULL"),
            (20, "MAP"),
            (21, "MAP_LIST"),
            (32, "JSON"),
            (33, "JSON_LIST"),
            (34, "STRUCT"),
            (35, "STRUCT_LIST"),
            (36, "UUID"),
            (37, "TIME_UUID"),
            (44, "DECIMAL"),
            (48, "ZONED_TIMESTAMP"),
        ];
        match known.iter().find(|(v, _)| *v == value) {
            Some((_, name)) => (*name).to_string(),
            None if (22..=29).contains(&value) || [40, 41, 43, 46].contains(&value) => {
                format!("a set type ({value})")
            }
            None => format!("value type {value}"),
        }
    }
}

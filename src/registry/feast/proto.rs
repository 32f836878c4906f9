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
    pub on_demand_feature_views: Vec<OnDemandFeatureView>,
    #[prost(message, repeated, tag = "12")]
    pub data_sources: Vec<DataSource>,
    #[prost(message, repeated, tag = "14")]
    pub stream_feature_views: Vec<Named>,
    #[prost(message, repeated, tag = "19")]
    pub label_views: Vec<LabelView>,
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

/// `feast.core.OnDemandFeatureView`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OnDemandFeatureView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<OnDemandFeatureViewSpec>,
}

/// `feast.core.OnDemandFeatureViewSpec`: what featgrid needs to plan a read or a write of the
/// view (the transformation itself is run by Feast's own code in the Python workers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OnDemandFeatureViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    /// The output schema.
    #[prost(message, repeated, tag = "3")]
    pub features: Vec<FeatureSpec>,
    /// Source name -> source (a feature view, a projection of one, or a request source).
    #[prost(map = "string, message", tag = "4")]
    pub sources: std::collections::HashMap<String, OnDemandSource>,
    #[prost(string, tag = "6")]
    pub description: String,
    /// `python`, `pandas` or `substrait`.
    #[prost(string, tag = "11")]
    pub mode: String,
    #[prost(bool, tag = "12")]
    pub write_to_online_store: bool,
    #[prost(string, repeated, tag = "13")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "14")]
    pub entity_columns: Vec<FeatureSpec>,
    #[prost(bool, tag = "15")]
    pub singleton: bool,
    /// `feast.core.Aggregation`s: only counted, to say they are not served.
    #[prost(message, repeated, tag = "16")]
    pub aggregations: Vec<Empty>,
    #[prost(bool, tag = "19")]
    pub disabled: bool,
}

/// `feast.core.OnDemandSource`: one of its three fields is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OnDemandSource {
    #[prost(message, optional, tag = "1")]
    pub feature_view: Option<FeatureView>,
    #[prost(message, optional, tag = "3")]
    pub feature_view_projection: Option<FeatureViewProjection>,
    #[prost(message, optional, tag = "2")]
    pub request_data_source: Option<RequestSource>,
}

/// `feast.core.DataSource` as a request source: its name and `request_data_options.schema`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestSource {
    #[prost(string, tag = "20")]
    pub name: String,
    #[prost(message, optional, tag = "18")]
    pub request_data_options: Option<RequestDataOptions>,
}

/// `feast.core.DataSource.RequestDataOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestDataOptions {
    #[prost(message, repeated, tag = "3")]
    pub schema: Vec<FeatureSpec>,
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
    #[prost(message, optional, tag = "2")]
    pub meta: Option<FeatureViewMeta>,
}

/// `feast.core.FeatureViewMeta`: the view's version number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewMeta {
    #[prost(int32, tag = "4")]
    pub current_version_number: i32,
}

/// `feast.core.LabelView` (Feast 0.67's `feast.labeling.LabelView`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelView {
    #[prost(message, optional, tag = "1")]
    pub spec: Option<LabelViewSpec>,
}

/// `feast.core.LabelViewSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelViewSpec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, repeated, tag = "3")]
    pub entities: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub features: Vec<FeatureSpec>,
    #[prost(message, optional, tag = "6")]
    pub ttl: Option<Duration>,
    /// Its push source (labels are pushed), with that source's batch source inside.
    #[prost(message, optional, tag = "7")]
    pub source: Option<DataSource>,
    #[prost(bool, tag = "8")]
    pub online: bool,
    #[prost(string, tag = "9")]
    pub description: String,
    #[prost(message, repeated, tag = "11")]
    pub entity_columns: Vec<FeatureSpec>,
    #[prost(string, tag = "12")]
    pub labeler_field: String,
    /// `ConflictResolutionPolicy`: 0 last write wins, 1 labeler priority, 2 majority vote.
    #[prost(int32, tag = "13")]
    pub conflict_policy: i32,
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
    #[prost(bool, tag = "17")]
    pub enable_validation: bool,
    /// The version declared (`version="latest"`, `"v2"`).
    #[prost(string, tag = "18")]
    pub version: String,
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

/// `feast.types.ValueType.Enum` (Feast 0.67's `Value.proto`, and `PDF_BYTES`/`IMAGE_BYTES`
/// from `feast/value_type.py`).
pub mod value_type {
    /// Every value with its name, in Feast's spelling.
    pub const NAMES: [(i32, &str); 47] = [
        (0, "INVALID"),
        (1, "BYTES"),
        (2, "STRING"),
        (3, "INT32"),
        (4, "INT64"),
        (5, "DOUBLE"),
        (6, "FLOAT"),
        (7, "BOOL"),
        (8, "UNIX_TIMESTAMP"),
        (9, "PDF_BYTES"),
        (10, "IMAGE_BYTES"),
        (11, "BYTES_LIST"),
        (12, "STRING_LIST"),
        (13, "INT32_LIST"),
        (14, "INT64_LIST"),
        (15, "DOUBLE_LIST"),
        (16, "FLOAT_LIST"),
        (17, "BOOL_LIST"),
        (18, "UNIX_TIMESTAMP_LIST"),
        (19, "NULL"),
        (20, "MAP"),
        (21, "MAP_LIST"),
        (22, "BYTES_SET"),
        (23, "STRING_SET"),
        (24, "INT32_SET"),
        (25, "INT64_SET"),
        (26, "DOUBLE_SET"),
        (27, "FLOAT_SET"),
        (28, "BOOL_SET"),
        (29, "UNIX_TIMESTAMP_SET"),
        (32, "JSON"),
        (33, "JSON_LIST"),
        (34, "STRUCT"),
        (35, "STRUCT_LIST"),
        (36, "UUID"),
        (37, "TIME_UUID"),
        (38, "UUID_LIST"),
        (39, "TIME_UUID_LIST"),
        (40, "UUID_SET"),
        (41, "TIME_UUID_SET"),
        (42, "VALUE_LIST"),
        (43, "VALUE_SET"),
        (44, "DECIMAL"),
        (45, "DECIMAL_LIST"),
        (46, "DECIMAL_SET"),
        (47, "SCALAR_MAP"),
        (48, "ZONED_TIMESTAMP"),
    ];

    pub const BYTES: i32 = 1;
    pub const STRING: i32 = 2;
    pub const INT32: i32 = 3;
    pub const INT64: i32 = 4;
    pub const DOUBLE: i32 = 5;
    pub const FLOAT: i32 = 6;
    pub const BOOL: i32 = 7;
    pub const UNIX_TIMESTAMP: i32 = 8;
    pub const PDF_BYTES: i32 = 9;
    pub const IMAGE_BYTES: i32 = 10;
    pub const BYTES_LIST: i32 = 11;
    pub const STRING_LIST: i32 = 12;
    pub const INT32_LIST: i32 = 13;
    pub const INT64_LIST: i32 = 14;
    pub const DOUBLE_LIST: i32 = 15;
    pub const FLOAT_LIST: i32 = 16;
    pub const BOOL_LIST: i32 = 17;
    pub const UNIX_TIMESTAMP_LIST: i32 = 18;
    pub const MAP: i32 = 20;
    pub const MAP_LIST: i32 = 21;
    pub const BYTES_SET: i32 = 22;
    pub const STRING_SET: i32 = 23;
    pub const INT32_SET: i32 = 24;
    pub const INT64_SET: i32 = 25;
    pub const DOUBLE_SET: i32 = 26;
    pub const FLOAT_SET: i32 = 27;
    pub const BOOL_SET: i32 = 28;
    pub const UNIX_TIMESTAMP_SET: i32 = 29;
    pub const JSON: i32 = 32;
    pub const JSON_LIST: i32 = 33;
    pub const STRUCT: i32 = 34;
    pub const STRUCT_LIST: i32 = 35;
    pub const UUID: i32 = 36;
    pub const TIME_UUID: i32 = 37;
    pub const UUID_LIST: i32 = 38;
    pub const TIME_UUID_LIST: i32 = 39;
    pub const UUID_SET: i32 = 40;
    pub const TIME_UUID_SET: i32 = 41;
    pub const VALUE_LIST: i32 = 42;
    pub const VALUE_SET: i32 = 43;
    pub const DECIMAL: i32 = 44;
    pub const DECIMAL_LIST: i32 = 45;
    pub const DECIMAL_SET: i32 = 46;
    pub const SCALAR_MAP: i32 = 47;
    pub const ZONED_TIMESTAMP: i32 = 48;

    /// Feast's name of a value type, for messages.
    pub fn name(value: i32) -> String {
        match NAMES.iter().find(|(v, _)| *v == value) {
            Some((_, name)) => (*name).to_string(),
            None => format!("value type {value}"),
        }
    }
}

//! A Feast feature view or label view as a registry declaration, and Feast's value types as
//! featgrid's: what of a view is read, and why one cannot be served (`Err` with the reason,
//! which the caller lists under `not_served`).

use super::proto;
use super::DUMMY_ENTITY;
use crate::registry::build::{FeatureViewDecl, FieldDecl};
use crate::registry::ViewKind;
use crate::value::{ScalarType, ValueType};

/// Feast's value type as featgrid's; `None` for the types featgrid does not store (`NULL`,
/// `INVALID`, and numbers Feast does not define).
pub fn value_type(feast: i32) -> Option<ValueType> {
    use proto::value_type::*;
    use ScalarType as S;
    let one = ValueType::scalar;
    let list = ValueType::list_of;
    let set = ValueType::set_of;
    Some(match feast {
        BYTES => one(S::Bytes),
        STRING => one(S::String),
        INT32 => one(S::Int32),
        INT64 => one(S::Int64),
        DOUBLE => one(S::Float64),
        FLOAT => one(S::Float32),
        BOOL => one(S::Bool),
        UNIX_TIMESTAMP => one(S::UnixTimestamp),
        BYTES_LIST => list(S::Bytes),
        STRING_LIST => list(S::String),
        INT32_LIST => list(S::Int32),
        INT64_LIST => list(S::Int64),
        DOUBLE_LIST => list(S::Float64),
        FLOAT_LIST => list(S::Float32),
        BOOL_LIST => list(S::Bool),
        UNIX_TIMESTAMP_LIST => list(S::UnixTimestamp),
        MAP => one(S::Map),
        MAP_LIST => list(S::Map),
        BYTES_SET => set(S::Bytes),
        STRING_SET => set(S::String),
        INT32_SET => set(S::Int32),
        INT64_SET => set(S::Int64),
        DOUBLE_SET => set(S::Float64),
        FLOAT_SET => set(S::Float32),
        BOOL_SET => set(S::Bool),
        UNIX_TIMESTAMP_SET => set(S::UnixTimestamp),
        JSON => one(S::Json),
        JSON_LIST => list(S::Json),
        STRUCT => one(S::Struct),
        STRUCT_LIST => list(S::Struct),
        UUID => one(S::Uuid),
        TIME_UUID => one(S::TimeUuid),
        UUID_LIST => list(S::Uuid),
        TIME_UUID_LIST => list(S::TimeUuid),
        UUID_SET => set(S::Uuid),
        TIME_UUID_SET => set(S::TimeUuid),
        VALUE_LIST => list(S::Value),
        VALUE_SET => set(S::Value),
        DECIMAL => one(S::Decimal),
        DECIMAL_LIST => list(S::Decimal),
        DECIMAL_SET => set(S::Decimal),
        SCALAR_MAP => one(S::ScalarMap),
        ZONED_TIMESTAMP => one(S::ZonedTimestamp),
        PDF_BYTES => one(S::PdfBytes),
        IMAGE_BYTES => one(S::ImageBytes),
        _ => return None,
    })
}

/// The fields of a view; `Err` names a field of a type featgrid does not store.
fn field_declarations(features: &[proto::FeatureSpec]) -> Result<Vec<FieldDecl>, String> {
    features
        .iter()
        .map(|f| {
            let dtype = value_type(f.value_type).ok_or_else(|| {
                format!(
                    "field '{}': Feast type {} is not a feature type",
                    f.name,
                    proto::value_type::name(f.value_type)
                )
            })?;
            Ok(FieldDecl {
                name: f.name.clone(),
                dtype: dtype.to_string(),
            })
        })
        .collect()
}

/// A view's ttl as a declaration's; `Err` for a negative one.
fn ttl_declaration(ttl: Option<proto::Duration>) -> Result<Option<toml::Value>, String> {
    Ok(match ttl {
        Some(t) if t.seconds < 0 || t.nanos < 0 => {
            return Err(format!("ttl {}s {}ns is negative", t.seconds, t.nanos))
        }
        Some(t) if t.nanos > 0 => {
            Some(toml::Value::String(format!("{}s {}ns", t.seconds, t.nanos)))
        }
        Some(t) if t.seconds > 0 => Some(toml::Value::Integer(t.seconds)),
        _ => None,
    })
}

/// A view's join-key types as `feast apply` inferred them (its `entity_columns`).
fn key_types(columns: &[proto::FeatureSpec]) -> Vec<(String, ValueType)> {
    columns
        .iter()
        .filter_map(|c| Some((c.name.clone(), value_type(c.value_type)?)))
        .collect()
}

/// A timestamp column named by `batch`, or the default.
fn column_of(
    batch: Option<&proto::DataSource>,
    pick: fn(&proto::DataSource) -> &String,
    default: &str,
) -> String {
    batch
        .map(pick)
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// The parts a feature view and a label view declare alike; `push_source` feeds the view and
/// `batch` names its timestamp columns. A plain feature view's declaration, until the caller
/// says otherwise.
struct Common<'a> {
    name: String,
    entities: Vec<String>,
    features: &'a [proto::FeatureSpec],
    ttl: Option<proto::Duration>,
    entity_columns: &'a [proto::FeatureSpec],
    description: String,
    push_source: Option<&'a proto::DataSource>,
    batch: Option<&'a proto::DataSource>,
}

impl Common<'_> {
    fn declaration(self) -> Result<FeatureViewDecl, String> {
        Ok(FeatureViewDecl {
            entities: self
                .entities
                .into_iter()
                .filter(|e| e.as_str() != DUMMY_ENTITY)
                .collect(),
            fields: field_declarations(self.features)?,
            ttl: ttl_declaration(self.ttl)?,
            source: self.push_source.map(|p| p.name.clone()),
            timestamp_field: column_of(self.batch, |s| &s.timestamp_field, "event_timestamp"),
            created_timestamp_column: column_of(
                self.batch,
                |s| &s.created_timestamp_column,
                "created",
            ),
            description: self.description,
            key_types: key_types(self.entity_columns),
            kind: ViewKind::FeatureView,
            labeler_field: None,
            conflict_policy: None,
            version: None,
            version_number: 0,
            enable_validation: false,
            offline: self
                .batch
                .map(crate::registry::batch::OfflineSource::from_feast),
            name: self.name,
        })
    }
}

/// A served label view's declaration: fed by its push source, keeping the last write.
pub(super) fn label_view_declaration(
    spec: proto::LabelViewSpec,
) -> Result<FeatureViewDecl, String> {
    let push_source = spec
        .source
        .as_ref()
        .filter(|s| s.r#type == proto::PUSH_SOURCE);
    let batch = push_source
        .and_then(|p| p.batch_source.as_deref())
        .or(spec.source.as_ref());
    let conflict_policy = match spec.conflict_policy {
        1 => "labeler_priority",
        2 => "majority_vote",
        _ => "last_write_wins",
    };
    let common = Common {
        name: spec.name,
        entities: spec.entities,
        features: &spec.features,
        ttl: spec.ttl,
        entity_columns: &spec.entity_columns,
        description: spec.description,
        push_source,
        batch,
    };
    Ok(FeatureViewDecl {
        kind: ViewKind::LabelView,
        labeler_field: (!spec.labeler_field.is_empty()).then_some(spec.labeler_field),
        conflict_policy: Some(conflict_policy.to_string()),
        ..common.declaration()?
    })
}

/// A served feature view's declaration; `Err` says why it cannot be served.
pub(super) fn view_declaration(spec: proto::FeatureViewSpec) -> Result<FeatureViewDecl, String> {
    let push_source = spec
        .stream_source
        .as_ref()
        .filter(|s| s.r#type == proto::PUSH_SOURCE);
    // The timestamp columns are named by the batch source (a push source's own batch source).
    let batch = spec
        .batch_source
        .as_ref()
        .or_else(|| push_source.and_then(|p| p.batch_source.as_deref()));
    let common = Common {
        name: spec.name,
        entities: spec.entities,
        features: &spec.features,
        ttl: spec.ttl,
        entity_columns: &spec.entity_columns,
        description: spec.description,
        push_source,
        batch,
    };
    Ok(FeatureViewDecl {
        version: (!spec.version.is_empty()).then_some(spec.version),
        enable_validation: spec.enable_validation,
        ..common.declaration()?
    })
}

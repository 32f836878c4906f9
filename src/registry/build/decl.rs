//! The registry's declarations as read: the TOML file format (`[[entities]]`,
//! `[[feature_views]]`, `[[push_sources]]`, `[[batch_sources]]`, `[[feature_services]]`),
//! which a Feast repo is turned into too, before [`crate::registry::Registry`]'s one
//! validation checks them.

use serde::Deserialize;

use crate::registry::ViewKind;
use crate::value::ValueType;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct RegistryFile {
    #[serde(default)]
    pub(in crate::registry) entities: Vec<EntityDecl>,
    #[serde(default)]
    pub(in crate::registry) feature_views: Vec<FeatureViewDecl>,
    #[serde(default)]
    pub(in crate::registry) push_sources: Vec<PushSourceDecl>,
    #[serde(default)]
    pub(in crate::registry) batch_sources: Vec<BatchSourceDecl>,
    #[serde(default)]
    pub(in crate::registry) feature_services: Vec<FeatureServiceDecl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct EntityDecl {
    pub(in crate::registry) name: String,
    pub(in crate::registry) join_key: Option<String>,
    pub(in crate::registry) value_type: String,
    #[serde(default)]
    pub(in crate::registry) description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct FeatureViewDecl {
    pub(in crate::registry) name: String,
    pub(in crate::registry) entities: Vec<String>,
    pub(in crate::registry) fields: Vec<FieldDecl>,
    #[serde(default)]
    pub(in crate::registry) ttl: Option<toml::Value>,
    pub(in crate::registry) source: Option<String>,
    #[serde(default = "default_timestamp_field")]
    pub(in crate::registry) timestamp_field: String,
    #[serde(default = "default_created_column")]
    pub(in crate::registry) created_timestamp_column: String,
    #[serde(default)]
    pub(in crate::registry) description: String,
    /// `label_view` for a label view (last write wins, `labeler_field`).
    #[serde(default)]
    pub(in crate::registry) kind: ViewKind,
    #[serde(default)]
    pub(in crate::registry) labeler_field: Option<String>,
    #[serde(default)]
    pub(in crate::registry) conflict_policy: Option<String>,
    #[serde(default)]
    pub(in crate::registry) version: Option<String>,
    /// Feast's `current_version_number` (never from TOML).
    #[serde(skip)]
    pub(in crate::registry) version_number: u32,
    #[serde(default)]
    pub(in crate::registry) enable_validation: bool,
    /// Where materialization reads the view's rows (from a Feast repo; TOML names it through
    /// `source`).
    #[serde(skip)]
    pub(in crate::registry) offline: Option<crate::registry::batch::OfflineSource>,
    /// The view's own join-key types where they differ from its entities' (a Feast view's
    /// `entity_columns`, as `feast apply` inferred them: Feast keys and echoes each view's
    /// entity values by these). Never from TOML.
    #[serde(skip)]
    pub(in crate::registry) key_types: Vec<(String, ValueType)>,
}

impl RegistryFile {
    /// Removes the object a validation error's `key` names (`feature_views[2].fields[0].name`
    /// names the third view) and says which it was; `None` when the key names no object.
    pub(in crate::registry) fn remove_named_by(&mut self, key: &str) -> Option<String> {
        let (section, rest) = key.split_once('[')?;
        let index: usize = rest.split_once(']')?.0.parse().ok()?;
        fn take<T>(items: &mut Vec<T>, i: usize) -> Option<T> {
            (i < items.len()).then(|| items.remove(i))
        }
        Some(match section {
            "entities" => format!("entity '{}'", take(&mut self.entities, index)?.name),
            "feature_views" => {
                let view = take(&mut self.feature_views, index)?;
                let what = match view.kind {
                    ViewKind::FeatureView => "feature view",
                    ViewKind::LabelView => "label view",
                };
                format!("{what} '{}'", view.name)
            }
            "push_sources" => format!(
                "push source '{}'",
                take(&mut self.push_sources, index)?.name
            ),
            "batch_sources" => format!(
                "batch source '{}'",
                take(&mut self.batch_sources, index)?.name
            ),
            "feature_services" => {
                format!(
                    "feature service '{}'",
                    take(&mut self.feature_services, index)?.name
                )
            }
            _ => return None,
        })
    }
}

fn default_timestamp_field() -> String {
    "event_timestamp".into()
}

fn default_created_column() -> String {
    "created".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct FieldDecl {
    pub(in crate::registry) name: String,
    pub(in crate::registry) dtype: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct PushSourceDecl {
    pub(in crate::registry) name: String,
    #[serde(default)]
    pub(in crate::registry) description: String,
}

/// A source featgrid does not read (Feast's `FileSource`, `BigQuerySource`, ...): views naming
/// it are written through `write-to-online-store` (e.g. by Feast's client-side `feast
/// materialize`), or, with a `path`, materialized by featgrid from that Parquet file or
/// directory ([`crate::registry::batch`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct BatchSourceDecl {
    pub(in crate::registry) name: String,
    #[serde(default)]
    pub(in crate::registry) description: String,
    /// A Parquet file or a directory of Parquet files, relative to the registry file.
    pub(in crate::registry) path: Option<String>,
    /// Source column -> the view's column.
    #[serde(default)]
    pub(in crate::registry) field_mapping: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::registry) struct FeatureServiceDecl {
    pub(in crate::registry) name: String,
    pub(in crate::registry) features: Vec<String>,
    #[serde(default)]
    pub(in crate::registry) description: String,
    /// The view alias each item of `features` is read under (Feast's `view.with_name(..)`),
    /// index-aligned with `features`; empty when none has one (always, from TOML).
    #[serde(skip)]
    pub(in crate::registry) aliases: Vec<Option<String>>,
}

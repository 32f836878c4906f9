//! Where a feature view's offline data lives, for materialization: a Parquet file or a
//! directory of Parquet files (a partitioned dataset), or a source featgrid cannot read itself
//! (a warehouse table, a Delta table, an object-store URL), kept with its type so that the
//! refusal can name it.
//!
//! From a Feast repo it is the view's batch source (a `FileSource`'s `uri`, relative to the
//! repo as Feast resolves it); from TOML, the `path` of the `[[batch_sources]]` entry the view
//! names (relative to the registry file). `field_mapping` renames source columns to the
//! view's columns, as Feast applies it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::feast::proto;

/// A view's offline source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineSource {
    /// The source's name in the registry.
    pub name: String,
    #[serde(flatten)]
    pub format: SourceFormat,
    /// Source column -> the view's column (join key, feature or timestamp).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mapping: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum SourceFormat {
    /// A local Parquet file or directory.
    Parquet { path: PathBuf },
    /// A source featgrid does not read: `source_type` names it, `reason` says why.
    Unsupported { source_type: String, reason: String },
}

impl OfflineSource {
    /// The column of the source that holds the view's column `name` (the inverse of
    /// `field_mapping`; the name itself when it is not mapped).
    pub fn source_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.field_mapping
            .iter()
            .find(|(_, to)| to.as_str() == name)
            .map_or(name, |(from, _)| from.as_str())
    }

    /// Resolves a relative Parquet path against `dir` (the repo, or the registry file's folder).
    pub fn resolve_against(&mut self, dir: &Path) {
        if let SourceFormat::Parquet { path } = &mut self.format {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// A Feast data source (a view's batch source) as featgrid reads it.
    pub fn from_feast(source: &proto::DataSource) -> OfflineSource {
        let unsupported = |reason: String| SourceFormat::Unsupported {
            source_type: source_type(source),
            reason,
        };
        let format = match &source.file_options {
            Some(file) if source.r#type == proto::BATCH_FILE => {
                let delta = file
                    .file_format
                    .as_ref()
                    .is_some_and(|f| f.delta_format.is_some());
                if delta {
                    unsupported("a Delta table; featgrid reads Parquet files".into())
                } else if let Some((scheme, _)) = file.uri.split_once("://") {
                    if scheme == "file" {
                        SourceFormat::Parquet {
                            path: PathBuf::from(&file.uri[scheme.len() + 3..]),
                        }
                    } else {
                        unsupported(format!(
                            "'{}' is a {scheme}:// URL; featgrid reads local paths",
                            file.uri
                        ))
                    }
                } else if !file.s3_endpoint_override.is_empty() {
                    unsupported("it sets s3_endpoint_override; featgrid reads local paths".into())
                } else {
                    SourceFormat::Parquet {
                        path: PathBuf::from(&file.uri),
                    }
                }
            }
            _ => unsupported("featgrid reads local Parquet FileSources".into()),
        };
        OfflineSource {
            name: source.name.clone(),
            format,
            field_mapping: source
                .field_mapping
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A source's type as Feast names it: its class, else its `SourceType`.
fn source_type(source: &proto::DataSource) -> String {
    if let Some(class) = source.data_source_class_type.rsplit('.').next() {
        if !class.is_empty() {
            return class.to_string();
        }
    }
    match source.r#type {
        1 => "FileSource",
        2 => "BigQuerySource",
        3 => "KafkaSource",
        4 => "KinesisSource",
        5 => "RedshiftSource",
        6 => "CustomSource",
        7 => "RequestSource",
        8 => "SnowflakeSource",
        9 => "PushSource",
        10 => "TrinoSource",
        11 => "SparkSource",
        12 => "AthenaSource",
        13 => "IcebergSource",
        _ => "an unknown source type",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(uri: &str) -> proto::DataSource {
        proto::DataSource {
            r#type: proto::BATCH_FILE,
            name: "f".into(),
            data_source_class_type: "feast.infra.offline_stores.file_source.FileSource".into(),
            file_options: Some(proto::FileOptions {
                uri: uri.into(),
                ..Default::default()
            }),
            field_mapping: [("src_rate".to_string(), "rate".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_local_file_source_is_parquet_resolved_against_the_repo() {
        let mut s = OfflineSource::from_feast(&file("data/stats.parquet"));
        s.resolve_against(Path::new("/repo"));
        assert_eq!(
            s.format,
            SourceFormat::Parquet {
                path: "/repo/data/stats.parquet".into()
            }
        );
        assert_eq!(s.source_column("rate"), "src_rate");
        assert_eq!(s.source_column("other"), "other");
        let mut abs = OfflineSource::from_feast(&file("file:///abs/x.parquet"));
        abs.resolve_against(Path::new("/repo"));
        assert_eq!(
            abs.format,
            SourceFormat::Parquet {
                path: "/abs/x.parquet".into()
            }
        );
    }

    #[test]
    fn remote_and_non_file_sources_are_named_unsupported() {
        let s = OfflineSource::from_feast(&file("s3://bucket/x.parquet"));
        assert!(
            matches!(&s.format, SourceFormat::Unsupported { source_type, reason }
                if source_type == "FileSource" && reason.contains("s3://")),
            "{s:?}"
        );
        let bq = proto::DataSource {
            r#type: 2,
            name: "b".into(),
            data_source_class_type: "feast.infra.offline_stores.bigquery_source.BigQuerySource"
                .into(),
            ..Default::default()
        };
        assert!(matches!(
            OfflineSource::from_feast(&bq).format,
            SourceFormat::Unsupported { source_type, .. } if source_type == "BigQuerySource"
        ));
    }
}

//! Registry checks across views: every column an answer or a push can hold has one meaning.
//!
//! - A feature is never named like a join key (nor, with `full_feature_names`, answered under
//!   a join key's name): an answer reading both would hold the name twice (Feast's clients keep
//!   the last, so a feature would be read as the key), and a push feeding both views would
//!   store the key as the feature.
//! - Across the views one push source feeds, a `df` column is a join key, a timestamp or a
//!   feature, never two of those.
//!
//! Errors are `(key, problem)` for [`super::RegistryError::Invalid`].

use std::collections::HashMap;

use super::{FeatureView, PushSource};

/// What a `df` column is to a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    JoinKey,
    Timestamp,
    Feature,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::JoinKey => "a join key",
            Role::Timestamp => "a timestamp column",
            Role::Feature => "a feature",
        }
    }
}

/// The columns of `view` (index `i`) with their role and the registry key that declares them.
fn columns(i: usize, view: &FeatureView) -> Vec<(&str, Role, String)> {
    let keys = view.join_keys.iter().map(|k| {
        (
            k.name.as_str(),
            Role::JoinKey,
            format!("feature_views[{i}].entities"),
        )
    });
    let times = [
        (&view.timestamp_field, "timestamp_field"),
        (&view.created_timestamp_column, "created_timestamp_column"),
    ]
    .into_iter()
    .map(|(c, setting)| {
        (
            c.as_str(),
            Role::Timestamp,
            format!("feature_views[{i}].{setting}"),
        )
    });
    let features = view.fields.iter().enumerate().map(|(j, f)| {
        (
            f.name.as_str(),
            Role::Feature,
            format!("feature_views[{i}].fields[{j}].name"),
        )
    });
    keys.chain(times).chain(features).collect()
}

pub(super) fn one_role_per_column(
    views: &[FeatureView],
    push_sources: &[PushSource],
) -> Result<(), (String, String)> {
    // Join key name -> a view that has it.
    let mut key_owner: HashMap<&str, &str> = HashMap::new();
    for view in views {
        for k in &view.join_keys {
            key_owner
                .entry(k.name.as_str())
                .or_insert(view.name.as_str());
        }
    }
    for (i, view) in views.iter().enumerate() {
        for (j, field) in view.fields.iter().enumerate() {
            let key = format!("feature_views[{i}].fields[{j}].name");
            if let Some(owner) = key_owner.get(field.name.as_str()) {
                return Err((key, format!(
                    "feature '{}' of view '{}' is named like a join key of view '{owner}': an answer reading both would hold two '{}' columns and a push feeding both would store the key as this feature; rename the feature",
                    field.name, view.name, field.name
                )));
            }
            let full = format!("{}__{}", view.name, field.name);
            if let Some(owner) = key_owner.get(full.as_str()) {
                return Err((key, format!(
                    "with full_feature_names, feature '{}' of view '{}' is answered as '{full}', the name of a join key of view '{owner}'; rename one of them",
                    field.name, view.name
                )));
            }
        }
    }
    for source in push_sources {
        // Column -> its role and the view that gave it that role first.
        let mut seen: HashMap<&str, (Role, &str)> = HashMap::new();
        for &id in &source.views {
            let view = &views[id];
            for (column, role, key) in columns(id, view) {
                match seen.get(column) {
                    Some(&(other, first)) if other != role => {
                        return Err((key, format!(
                            "push source '{}' feeds views '{first}' and '{}', and its column '{column}' is {} of '{first}' but {} of '{}': a push would store one as the other; rename one of them",
                            source.name, view.name, other.name(), role.name(), view.name
                        )));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(column, (role, view.name.as_str()));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::registry::Registry;

    /// Entities `driver` (join key `driver_id`) and `customer` (`customer_id`), push source
    /// `p`, batch source `files`.
    const BASE: &str = r#"
        [[entities]]
        name = "driver"
        join_key = "driver_id"
        value_type = "int64"
        [[entities]]
        name = "customer"
        join_key = "customer_id"
        value_type = "string"
        [[push_sources]]
        name = "p"
        [[batch_sources]]
        name = "files"
    "#;

    /// A view `name` of `entity`, fed by `source`, with `more` settings and one int64 field
    /// per name in `fields`.
    fn view(name: &str, entity: &str, source: &str, more: &str, fields: &[&str]) -> String {
        let fields: Vec<String> = fields
            .iter()
            .map(|f| format!(r#"{{ name = "{f}", dtype = "int64" }}"#))
            .collect();
        format!(
            "[[feature_views]]\nname = \"{name}\"\nentities = [\"{entity}\"]\nsource = \"{source}\"\n{more}\nfields = [{}]\n",
            fields.join(", ")
        )
    }

    fn parse(parts: &[String]) -> Result<Registry, String> {
        Registry::parse(&format!("{BASE}\n{}", parts.concat()), "bad.toml")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_feature_is_never_named_like_a_join_key() {
        let e = parse(&[
            view("a", "driver", "p", "", &["x"]),
            view("b", "customer", "files", "", &["driver_id"]),
        ])
        .unwrap_err();
        assert!(
            e.starts_with("bad.toml: feature_views[1].fields[0].name: feature 'driver_id' of view 'b' is named like a join key of view 'a'"),
            "{e}"
        );
        let e = parse(&[
            view("a", "driver", "p", "", &["x"]),
            "[[entities]]\nname = \"odd\"\njoin_key = \"a__x\"\nvalue_type = \"int64\"\n".into(),
            view("c", "odd", "files", "", &["z"]),
        ])
        .unwrap_err();
        assert!(
            e.contains("feature_views[0].fields[0].name: with full_feature_names, feature 'x' of view 'a' is answered as 'a__x', the name of a join key of view 'c'"),
            "{e}"
        );
        // The same feature name in two views is fine: full_feature_names tells them apart.
        parse(&[
            view("a", "driver", "p", "", &["x"]),
            view("b", "customer", "p", "", &["x"]),
        ])
        .unwrap();
    }

    #[test]
    fn a_pushed_column_has_one_role() {
        // View b's feature `event_timestamp` is view a's event time.
        let views = |b_source: &str| {
            [
                view("a", "driver", "p", "", &["x"]),
                view(
                    "b",
                    "customer",
                    b_source,
                    "timestamp_field = \"ts\"",
                    &["event_timestamp"],
                ),
            ]
        };
        let e = parse(&views("p")).unwrap_err();
        assert!(e.starts_with("bad.toml: feature_views[1].fields[0].name: push source 'p' feeds views 'a' and 'b', and its column 'event_timestamp' is a timestamp column of 'a' but a feature of 'b'"), "{e}");
        // Views not fed by one push source each read their own df.
        let r = parse(&views("files")).unwrap();
        assert_eq!(r.batch_sources[0].feature_views, ["b"]);
    }

    #[test]
    fn a_source_must_be_declared() {
        let e = parse(&[
            view("fed", "driver", "p", "", &["x"]),
            view("typo", "driver", "q", "", &["x"]),
        ])
        .unwrap_err();
        assert!(e.starts_with("bad.toml: feature_views[1].source: feature view 'typo' names source 'q', which is neither a push source nor a batch source"), "{e}");
        let e = parse(&[
            view("a", "driver", "p", "", &["x"]),
            "[[batch_sources]]\nname = \"p\"\n".into(),
        ])
        .unwrap_err();
        assert!(
            e.starts_with("bad.toml: batch_sources[1].name: source 'p' is declared twice"),
            "{e}"
        );
    }

    #[test]
    fn a_timestamp_column_is_not_a_join_key() {
        for setting in ["timestamp_field", "created_timestamp_column"] {
            let more = format!("{setting} = \"driver_id\"");
            let e = parse(&[view("v", "driver", "p", &more, &["x"])]).unwrap_err();
            assert!(
                e.starts_with(&format!("bad.toml: feature_views[0].{setting}: 'driver_id' is a join key of feature view 'v'")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_feature_service_lists_each_feature_once() {
        let views = [
            view("a", "driver", "p", "", &["x", "y"]),
            view("b", "customer", "p", "", &["x"]),
        ];
        for (features, at) in [
            (r#"["a:x", "a:x"]"#, 1),
            (r#"["a", "b:x", "a:x"]"#, 2),
            (r#"["a:x", "b", "a"]"#, 2),
        ] {
            let service = format!("[[feature_services]]\nname = \"s\"\nfeatures = {features}\n");
            let e = parse(&[views[0].clone(), views[1].clone(), service]).unwrap_err();
            assert!(
                e.starts_with(&format!("bad.toml: feature_services[0].features[{at}]: feature service 's' lists 'a:x' twice (also in features[0])")),
                "{features}: {e}"
            );
        }
        // The same name from two views is two features (full_feature_names tells them apart).
        let service = "[[feature_services]]\nname = \"s\"\nfeatures = [\"a\", \"b\"]\n".to_string();
        let r = parse(&[views[0].clone(), views[1].clone(), service]).unwrap();
        assert_eq!(
            r.feature_service("s").unwrap().features,
            ["a:x", "a:y", "b:x"]
        );
    }
}

//! The Parquet file for one view's buffered rows, written whole in memory: the schema (join
//! keys, event timestamp, created, features; lists as Parquet `LIST`s, timestamps as
//! `timestamp[us, UTC]`), one row group, the values decoded from the stored row bytes into
//! [`super::columns`], Snappy-compressed.

use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use super::columns::Column;
use crate::grid::partition::{RowBatch, RowLayout};
use crate::registry::FeatureView;
use crate::value::{ScalarType, ValueType};

fn leaf(name: &str, scalar: ScalarType, repetition: Repetition) -> Result<TypePtr, String> {
    let (physical, logical) = match scalar {
        ScalarType::Int32 => (PhysicalType::INT32, None),
        ScalarType::Int64 => (PhysicalType::INT64, None),
        ScalarType::Float32 => (PhysicalType::FLOAT, None),
        ScalarType::Float64 => (PhysicalType::DOUBLE, None),
        ScalarType::Bool => (PhysicalType::BOOLEAN, None),
        ScalarType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        ScalarType::Bytes | ScalarType::PdfBytes | ScalarType::ImageBytes => {
            (PhysicalType::BYTE_ARRAY, None)
        }
        ScalarType::Uuid
        | ScalarType::TimeUuid
        | ScalarType::Decimal
        | ScalarType::ZonedTimestamp
        | ScalarType::Map
        | ScalarType::Json
        | ScalarType::Struct
        | ScalarType::ScalarMap
        | ScalarType::Value => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        ScalarType::UnixTimestamp => (
            PhysicalType::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical)
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn field_type(name: &str, ty: ValueType) -> Result<TypePtr, String> {
    if !ty.list {
        return leaf(name, ty.scalar, Repetition::OPTIONAL);
    }
    let list = Type::group_type_builder("list")
        .with_repetition(Repetition::REPEATED)
        .with_fields(vec![leaf("element", ty.scalar, Repetition::REQUIRED)?])
        .build()
        .map_err(|e| e.to_string())?;
    Type::group_type_builder(name)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(Some(LogicalType::List))
        .with_fields(vec![Arc::new(list)])
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// The whole Parquet file for a view's buffered rows (one row group).
pub fn encode_parquet(
    view: &FeatureView,
    layout: &RowLayout,
    batch: &RowBatch,
) -> Result<Vec<u8>, String> {
    let timestamp = ValueType::scalar(ScalarType::UnixTimestamp);
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for k in &view.join_keys {
        fields.push(field_type(&k.name, k.value_type)?);
        columns.push(Column::new(k.value_type));
    }
    fields.push(leaf(
        &view.timestamp_field,
        ScalarType::UnixTimestamp,
        Repetition::REQUIRED,
    )?);
    columns.push(Column::required(ScalarType::UnixTimestamp));
    fields.push(field_type(&view.created_timestamp_column, timestamp)?);
    columns.push(Column::new(timestamp));
    for f in &view.fields {
        fields.push(field_type(&f.name, f.dtype)?);
        columns.push(Column::new(f.dtype));
    }
    let schema = Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
        .map_err(|e| e.to_string())?;

    let keys = view.join_keys.len();
    let mut order: Vec<usize> = (0..keys).collect();
    order.sort_by(|&a, &b| view.join_keys[a].name.cmp(&view.join_keys[b].name));
    for i in 0..batch.len() {
        let mut rest = batch.key(i);
        for &k in &order {
            let width = view.join_keys[k].value_type.scalar.fixed_width();
            let len = match width {
                Some(w) => w,
                None => {
                    let (len, tail) = rest
                        .split_first_chunk::<4>()
                        .ok_or("a stored key is cut short")?;
                    rest = tail;
                    u32::from_le_bytes(*len) as usize
                }
            };
            if len > rest.len() {
                return Err("a stored key is cut short".into());
            }
            let (value, tail) = rest.split_at(len);
            columns[k].push(Some(value));
            rest = tail;
        }
        let row = batch.row(layout, i);
        columns[keys].push(Some(&row.event_ts().to_le_bytes()));
        let created = row.created_ts();
        columns[keys + 1].push(
            (created != crate::grid::partition::NO_CREATED).then_some(&created.to_le_bytes()[..]),
        );
        for f in 0..view.fields.len() {
            columns[keys + 2 + f].push((!row.is_null(f)).then(|| row.field(f)));
        }
    }

    let mut out = Vec::new();
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build(),
    );
    let mut writer =
        SerializedFileWriter::new(&mut out, Arc::new(schema), props).map_err(|e| e.to_string())?;
    let mut group = writer.next_row_group().map_err(|e| e.to_string())?;
    let mut columns = columns.into_iter();
    while let Some(mut column) = group.next_column().map_err(|e| e.to_string())? {
        let data = columns.next().ok_or("more Parquet columns than fields")?;
        data.write(&mut column).map_err(|e| e.to_string())?;
        column.close().map_err(|e| e.to_string())?;
    }
    group.close().map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::partition::NO_CREATED;
    use crate::registry::Registry;
    use crate::value::{encode_key_value, encode_value};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;

    #[test]
    fn every_type_lands_in_a_readable_parquet_file() {
        let registry = Registry::parse(
            include_str!("../../../config/example_registry.toml"),
            "example",
        )
        .unwrap();
        let layouts = RowLayout::for_registry(&registry);
        let view = registry.view("customer_profile").unwrap();
        let layout = &layouts[view.id];
        let values = [
            json!(30),
            json!(1234),
            json!(4.5),
            json!(99.25),
            json!("Ada"),
            json!("aGk="),
            json!(true),
            json!("2026-11-25T10:00:00Z"),
            json!([1, 2]),
            json!([3]),
            json!([0.5]),
            json!([]),
            json!(["home", "work"]),
            json!(["AA=="]),
            json!([true]),
            json!(["2026-01-01T00:00:00Z"]),
        ];
        let mut batch = RowBatch::new(view.id);
        for (name, created, nulls) in [("alice", 7, false), ("bob", NO_CREATED, true)] {
            let mut key = Vec::new();
            encode_key_value(view.join_keys[0].value_type, &json!(name), &mut key).unwrap();
            batch.start_row(layout, &key, 1_795_600_800_000_000, created);
            for (i, v) in values.iter().enumerate() {
                if !nulls || i % 2 == 0 {
                    batch
                        .encode_field(layout, i, |out| encode_value(view.fields[i].dtype, v, out))
                        .unwrap();
                }
            }
        }
        let bytes = encode_parquet(view, layout, &batch).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let schema = reader.metadata().file_metadata().schema_descr();
        assert_eq!(schema.num_columns(), 1 + 2 + 16);
        let rows: Vec<String> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect();
        assert!(rows[0].contains("customer_id: \"alice\""), "{}", rows[0]);
        assert!(
            rows[0].contains("favourite_places: [\"home\", \"work\"]"),
            "{}",
            rows[0]
        );
        assert!(rows[0].contains("recent_fares: []"), "{}", rows[0]);
        assert!(rows[1].contains("created: null"), "{}", rows[1]);
        assert!(rows[1].contains("lifetime_trips: null"), "{}", rows[1]);
    }
}

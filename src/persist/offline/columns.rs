//! Column buffers for one Parquet file: typed values plus definition (and, for lists,
//! repetition) levels, filled row by row from stored value bytes. Types without a Parquet
//! counterpart (uuid, decimal, zoned timestamp, map, struct, json, nested lists) are written
//! as the UTF-8 text their JSON answer holds.

use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::errors::Result;
use parquet::file::writer::SerializedColumnWriter;

use crate::value::{le, render_text, stored_elements, ScalarType, ValueType};

enum Values {
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    Bytes(Vec<ByteArray>),
}

pub struct Column {
    ty: ValueType,
    required: bool,
    values: Values,
    defs: Vec<i16>,
    reps: Vec<i16>,
}

impl Column {
    /// An optional column (a list column is an optional list of required elements).
    pub fn new(ty: ValueType) -> Column {
        let values = match ty.scalar {
            ScalarType::Int32 => Values::I32(Vec::new()),
            ScalarType::Int64 | ScalarType::UnixTimestamp => Values::I64(Vec::new()),
            ScalarType::Float32 => Values::F32(Vec::new()),
            ScalarType::Float64 => Values::F64(Vec::new()),
            ScalarType::Bool => Values::Bool(Vec::new()),
            _ => Values::Bytes(Vec::new()),
        };
        Column {
            ty,
            required: false,
            values,
            defs: Vec::new(),
            reps: Vec::new(),
        }
    }

    /// A required scalar column.
    pub fn required(scalar: ScalarType) -> Column {
        Column {
            required: true,
            ..Column::new(ValueType::scalar(scalar))
        }
    }

    fn push_scalar(&mut self, bytes: &[u8]) {
        match &mut self.values {
            Values::I32(v) => v.push(i32::from_le_bytes(le(bytes))),
            Values::I64(v) => v.push(i64::from_le_bytes(le(bytes))),
            Values::F32(v) => v.push(f32::from_le_bytes(le(bytes))),
            Values::F64(v) => v.push(f64::from_le_bytes(le(bytes))),
            Values::Bool(v) => v.push(bytes.first() == Some(&1)),
            Values::Bytes(v) => v.push(ByteArray::from(match self.ty.scalar {
                ScalarType::String
                | ScalarType::Bytes
                | ScalarType::PdfBytes
                | ScalarType::ImageBytes => bytes.to_vec(),
                // The text of the JSON answer: a UUID's canonical form, a map as JSON ...
                other => render_text(other, bytes).into_bytes(),
            })),
        }
    }

    /// Appends one row's value: `None` is null.
    pub fn push(&mut self, value: Option<&[u8]>) {
        match (self.ty.list, value) {
            (false, None) => self.defs.push(0),
            (false, Some(bytes)) => {
                self.defs.push(1);
                self.push_scalar(bytes);
            }
            (true, None) => {
                self.defs.push(0);
                self.reps.push(0);
            }
            (true, Some(bytes)) => {
                let mut first = true;
                for element in stored_elements(self.ty.scalar, bytes) {
                    self.defs.push(2);
                    self.reps.push(if first { 0 } else { 1 });
                    first = false;
                    self.push_scalar(element);
                }
                if first {
                    // An empty list: defined, with no element.
                    self.defs.push(1);
                    self.reps.push(0);
                }
            }
        }
    }

    pub fn write(self, column: &mut SerializedColumnWriter<'_>) -> Result<()> {
        let defs = (!self.required).then_some(&self.defs[..]);
        let reps = self.ty.list.then_some(&self.reps[..]);
        match &self.values {
            Values::I32(v) => column.typed::<Int32Type>().write_batch(v, defs, reps)?,
            Values::I64(v) => column.typed::<Int64Type>().write_batch(v, defs, reps)?,
            Values::F32(v) => column.typed::<FloatType>().write_batch(v, defs, reps)?,
            Values::F64(v) => column.typed::<DoubleType>().write_batch(v, defs, reps)?,
            Values::Bool(v) => column.typed::<BoolType>().write_batch(v, defs, reps)?,
            Values::Bytes(v) => column.typed::<ByteArrayType>().write_batch(v, defs, reps)?,
        };
        Ok(())
    }
}

//! Validation of the format 1.5 table, each rule triggered on purpose.

use std::vec::Vec;

use crate::builder::{BuildError, ModelBuilder, TensorSpec};
use crate::error::{FormatError, OpProblem};
use crate::model::Model;
use crate::op::{Op, OpKind, TABLE_LEN, Table, table_of};
use crate::tensor::Shape;

/// Input (`in_bits`) → `Table` → output of `out_shape` and `out_bits`.
fn table_model(
    values: &[u8],
    in_bits: u8,
    out_shape: Shape,
    out_bits: u8,
) -> Result<Vec<u8>, BuildError> {
    let mut b = ModelBuilder::new(
        TensorSpec {
            shape: Shape::new(3, 2, 4),
            zero_point: 0,
            bits: in_bits,
        },
        0.05,
    );
    let y = b.tensor(TensorSpec {
        shape: out_shape,
        zero_point: 0,
        bits: out_bits,
    });
    b.push(&Op::Table(Table {
        input: 0,
        output: y,
        values,
    }))?;
    b.finish(y, 0.02)
}

fn table_problem(values: &[u8], out_shape: Shape, out_bits: u8) -> OpProblem {
    match table_model(values, 8, out_shape, out_bits) {
        Err(BuildError::Invalid(FormatError::Op {
            index: 0,
            kind: OpKind::Table,
            problem,
        })) => problem,
        other => panic!("expected a table error, got {other:?}"),
    }
}

#[test]
fn a_table_round_trips_and_stamps_minor_five() {
    let values = table_of(|x| x / 2);
    let shape = Shape::new(3, 2, 4);
    let blob = table_model(&values, 8, shape, 8).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.header().minor, 5);
    assert_eq!(crate::FORMAT_MINOR, 6);
    assert_eq!(model.scratch_bytes(), 0);
    let op = model.ops().next().unwrap().unwrap();
    assert_eq!(
        op,
        Op::Table(Table {
            input: 0,
            output: 1,
            values: &values
        })
    );
    assert_eq!(op.kind().name(), "table");
    assert_eq!(op.inputs().as_slice(), &[0]);
    // Any input bit-width: the lookup reads the byte.
    table_model(&values, 3, shape, 8).unwrap();
    // A 4-bit output takes a table whose every entry fits 4 bits.
    table_model(&table_of(|x| x.clamp(-8, 7)), 8, shape, 4).unwrap();
}

#[test]
fn a_table_of_the_wrong_length_is_refused() {
    let shape = Shape::new(3, 2, 4);
    for len in [0, 1, TABLE_LEN - 1, TABLE_LEN + 1, 512] {
        assert!(
            matches!(
                table_problem(&vec![0; len], shape, 8),
                OpProblem::TableLength(n) if n == len
            ),
            "length {len}"
        );
    }
}

#[test]
fn a_table_entry_outside_the_output_bits_is_refused() {
    let shape = Shape::new(3, 2, 4);
    // Entry for input byte 9 is 9: outside a 4-bit output's [-8, 7].
    let values = table_of(|x| x);
    assert!(matches!(
        table_problem(&values, shape, 4),
        OpProblem::TableValue {
            index: 8,
            value: 8,
            bits: 4
        }
    ));
    let mut values = table_of(|_| 0);
    values[200] = (-3i8) as u8;
    assert!(matches!(
        table_problem(&values, shape, 2),
        OpProblem::TableValue {
            index: 200,
            value: -3,
            bits: 2
        }
    ));
}

#[test]
fn a_table_keeps_its_input_shape() {
    let values = table_of(|x| x);
    assert!(matches!(
        table_problem(&values, Shape::new(1, 1, 24), 8),
        OpProblem::OutputShape { .. }
    ));
}

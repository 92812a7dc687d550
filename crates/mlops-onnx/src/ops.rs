//! `ai.onnx.ml` operators tract 0.23 lacks and common exporters write, added to its register.
//!
//! - `Scaler`: `Y = (X - offset) * scale`, per feature (or one value for all): what skl2onnx
//!   makes of scikit-learn's `StandardScaler`, `MinMaxScaler`, `MaxAbsScaler` and `RobustScaler`.
//!   Wired as a subtraction and a multiplication by constants, so tract optimises it with the
//!   rest of the graph.

use tract_hir::internal::*;
use tract_hir::ops::logic::wire_with_rank_broadcast;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

/// Adds the operators of this module to `register`.
pub(crate) fn register(register: &mut OnnxOpRegister) {
    register.insert("Scaler", scaler);
}

#[derive(Debug, Clone, PartialEq)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    ensure!(
        !offset.is_empty() && !scale.is_empty(),
        "Scaler: `offset` and `scale` need a value each"
    );
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        let ([input], [output]) = (inputs, outputs) else {
            bail!("Scaler takes one input and gives one output");
        };
        s.equals(&output.datum_type, DatumType::F32)?;
        s.equals(&input.shape, &output.shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let Some(&(mut x)) = inputs.first() else {
            bail!("Scaler takes one input");
        };
        if model.outlet_fact(x)?.datum_type != f32::datum_type() {
            x = one(model.wire_node(
                format!("{prefix}.to_f32"),
                tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?)?;
        }
        let rank = model.outlet_fact(x)?.rank();
        // A vector of per-feature values along the last axis, or one value for all.
        let constant = |values: &[f32]| -> TractResult<Arc<Tensor>> {
            let t = tensor1(values);
            Ok(t.broadcast_into_rank(rank.max(1))?.into_arc_tensor())
        };
        let offset = model.add_const(format!("{prefix}.offset"), constant(&self.offset)?)?;
        let scale = model.add_const(format!("{prefix}.scale"), constant(&self.scale)?)?;
        let centred = one(wire_with_rank_broadcast(
            format!("{prefix}.sub"),
            model,
            tract_core::ops::math::sub(),
            &[x, offset],
        )?)?;
        wire_with_rank_broadcast(
            format!("{prefix}.mul"),
            model,
            tract_core::ops::math::mul(),
            &[centred, scale],
        )
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1)
    }
}

/// The one output a wired node has.
fn one(outlets: TVec<OutletId>) -> TractResult<OutletId> {
    outlets
        .first()
        .copied()
        .ok_or_else(|| format_err!("a wired node has no output"))
}

//! The dense layer `x w + b` on the CPU, with its backward pass, as one operation.
//!
//! burn's `Linear` is a matrix product and a broadcast addition, and on the CPU backend every
//! product's result is allocated zeroed and then copied once more into a buffer of stricter
//! alignment (burn-flex 0.22's `FlexTensor::empty`): on the wide MLP that allocation, zeroing and
//! copy were about a tenth of a training run (BENCHMARKS.md). This operation makes the same
//! products with the same `gemm` calls (the same operand layouts, strides and parallelism), into
//! buffers it allocates once, adds the bias in place, and in the backward pass forms the weight's
//! and the input's gradients the way burn's `matmul` backward does and the bias's gradient as the
//! column sums. The results are burn's bit for bit (the unit tests compare values and gradients
//! with `Linear::forward`'s). Only the CPU device (flex) has it; on any other device, or for a
//! layer without a bias, `Network` calls burn's `Linear`.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};
use burn_flex::{FlexTensor, Layout};

#[backend_extension(Autodiff, Flex)]
pub trait DenseOps: Backend {
    /// `x w + b` for `x` `[rows, inputs]`, `w` `[inputs, outputs]` and `b` `[outputs]`.
    fn dense(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>)
    -> FloatTensor<Self>;
}

/// `layer`'s output for `x`: this module's operation on the CPU device, burn's `Linear` elsewhere.
pub fn forward(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    match &layer.bias {
        Some(bias) if x.device() == Device::flex() && x.dtype() == DType::F32 => {
            Tensor::from_dispatch(<Dispatch as DenseOps>::dense(
                x.into_dispatch(),
                layer.weight.val().into_dispatch(),
                bias.val().into_dispatch(),
            ))
        }
        _ => layer.forward(x),
    }
}

/// Products below this many multiply-adds run on the calling thread (burn-flex's threshold, so
/// that each product is computed exactly as burn computes it).
const PARALLEL_FROM: usize = 192 * 192 * 192;

/// Where a 2-d tensor's values are in its storage.
struct View {
    rows: usize,
    columns: usize,
    row_stride: isize,
    column_stride: isize,
    offset: usize,
}

/// `t`'s view, when it is a 2-d f32 tensor.
fn view(t: &FlexTensor) -> Option<View> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let layout = t.layout();
    let (rows, columns, row_stride, column_stride) = layout.as_2d_strides()?;
    Some(View {
        rows,
        columns,
        row_stride,
        column_stride,
        offset: layout.start_offset(),
    })
}

/// `lhs rhs`, computed as burn-flex's 2-d `matmul` computes it (the same `gemm` call) into a
/// buffer allocated once; burn's own `matmul` for anything but two 2-d f32 matrices.
fn product(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    match (view(&lhs), view(&rhs)) {
        (Some(l), Some(r)) if l.columns == r.rows => {
            let values = multiply(&lhs, &l, &rhs, &r);
            matrix(values, l.rows, r.columns)
        }
        _ => Flex::float_matmul(lhs, rhs),
    }
}

#[allow(unsafe_code)]
fn multiply(lhs: &FlexTensor, l: &View, rhs: &FlexTensor, r: &View) -> Vec<f32> {
    let (m, k, n) = (l.rows, l.columns, r.columns);
    let lhs_values: &[f32] = lhs.storage();
    let rhs_values: &[f32] = rhs.storage();
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    if k == 0 {
        out.resize(m * n, 0.0);
        return out;
    }
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_FROM {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the operands' pointers, strides and extents come from their layouts, which
    // address only their storage (burn-flex's `matmul` makes the same call from the same
    // layouts); `out` has room for `m * n` values and gemm writes every one of them (it does not
    // read the destination: `read_dst` is false and `k > 0`), so setting the length afterwards
    // exposes only written values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs_values.as_ptr().add(l.offset),
            l.column_stride,
            l.row_stride,
            rhs_values.as_ptr().add(r.offset),
            r.column_stride,
            r.row_stride,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(m * n);
    }
    out
}

fn matrix(values: Vec<f32>, rows: usize, columns: usize) -> FlexTensor {
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(values),
        Layout::contiguous([rows, columns].into()),
        DType::F32,
    )
}

/// burn's own `x w + b`.
fn composed(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
    let outputs = b.layout().num_elements();
    let b = Flex::float_reshape(b, [1, outputs].into());
    Flex::float_add(Flex::float_matmul(x, w), b)
}

impl DenseOps for Flex {
    fn dense(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let outputs = view(&w).map(|w| w.columns);
        let fits = view(&x).is_some()
            && b.dtype() == DType::F32
            && b.layout().num_dims() == 1
            && Some(b.layout().num_elements()) == outputs;
        let Some(n) = outputs.filter(|_| fits) else {
            return composed(x, w, b);
        };
        let b = b.to_contiguous();
        let bias: &[f32] = b.storage();
        let mut out = product(x, w);
        let values: &mut [f32] = out.storage_mut();
        for row in values.chunks_exact_mut(n.max(1)) {
            for (y, &b) in row.iter_mut().zip(bias) {
                *y += b;
            }
        }
        out
    }
}

/// The column sums of the matrix `g`, accumulated row after row (burn-flex's `sum_dim(0)`
/// order); burn's own for anything but a 2-d f32 matrix.
fn column_sums(g: FlexTensor) -> FlexTensor {
    let Some(v) = view(&g) else {
        let summed = Flex::float_sum_dim(g, 0);
        let n = summed.layout().num_elements();
        return Flex::float_reshape(summed, [n].into());
    };
    let g = g.to_contiguous();
    let values: &[f32] = g.storage();
    let mut sums = vec![0f32; v.columns];
    for row in values.chunks_exact(v.columns.max(1)) {
        for (s, &x) in sums.iter_mut().zip(row) {
            *s += x;
        }
    }
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(sums),
        Layout::contiguous([v.columns].into()),
        DType::F32,
    )
}

#[derive(Debug)]
struct DenseBackward;

impl Backward<Flex, 3> for DenseBackward {
    /// The input (kept when the weight needs a gradient) and the weight (kept when the input
    /// does).
    type State = (Option<FlexTensor>, Option<FlexTensor>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, w_node, b_node] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        if let (Some(node), Some(w)) = (x_node, w) {
            // grad w^T, the weight transposed as a strided view, as burn's matmul backward.
            grads.register::<Flex>(node.id, product(grad.clone(), w.transpose(0, 1)));
        }
        if let (Some(node), Some(x)) = (w_node, x) {
            grads.register::<Flex>(node.id, product(x.transpose(0, 1), grad.clone()));
        }
        if let Some(node) = b_node {
            grads.register::<Flex>(node.id, column_sums(grad));
        }
    }
}

impl<C: CheckpointStrategy> DenseOps for Autodiff<Flex, C> {
    fn dense(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (x_tracked, w_tracked) = (x.is_tracked(), w.is_tracked());
        match DenseBackward
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (
                    w_tracked.then(|| x.primitive().clone()),
                    x_tracked.then(|| w.primitive().clone()),
                );
                let out = Flex::dense(x.into_primitive(), w.into_primitive(), b.into_primitive());
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::dense(
                x.into_primitive(),
                w.into_primitive(),
                b.into_primitive(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::Distribution;

    fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
        let data = t.into_data();
        data.as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    }

    /// A layer and an input of `rows x inputs`, large enough for gemm to split the product
    /// between threads when `rows` is.
    fn case(rows: usize, inputs: usize, outputs: usize, device: &Device) -> (Linear, Tensor<2>) {
        device.seed(5);
        let layer = LinearConfig::new(inputs, outputs).init(device);
        let x = Tensor::<2>::random([rows, inputs], Distribution::Normal(0.0, 1.0), device);
        (layer, x)
    }

    fn assert_same(what: &str, expected: &[u32], actual: &[u32]) {
        assert_eq!(expected.len(), actual.len(), "{what}: lengths");
        let differing = expected.iter().zip(actual).filter(|(e, a)| e != a).count();
        assert_eq!(
            differing,
            0,
            "{what}: {differing} of {} values differ",
            expected.len()
        );
        assert!(expected.iter().any(|&v| v != 0), "{what}: all zero");
    }

    #[test]
    fn the_forward_pass_is_linears_bit_for_bit() {
        let _rng = crate::train::RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (rows, inputs, outputs) in [(3, 5, 2), (256, 512, 512), (300, 64, 10)] {
            let device = Device::flex();
            let (layer, x) = case(rows, inputs, outputs, &device);
            let expected = bits(layer.forward(x.clone()));
            // A transposed (strided) input takes the same path as burn's.
            let xt = x.clone().transpose().transpose();
            assert_same("forward", &expected, &bits(forward(&layer, x)));
            assert_same("strided forward", &expected, &bits(forward(&layer, xt)));
        }
    }

    #[test]
    fn the_gradients_are_linears_bit_for_bit() {
        let _rng = crate::train::RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (rows, inputs, outputs, input_tracked) in [
            (7, 9, 4, true),
            (256, 512, 512, true),
            (256, 64, 512, false),
        ] {
            let device = Device::flex().autodiff();
            let (layer, x) = case(rows, inputs, outputs, &device);
            let x = if input_tracked { x.require_grad() } else { x };
            // A loss whose gradient differs from element to element.
            let weights = Tensor::<2>::random([rows, outputs], Distribution::Default, &device);
            let run = |out: Tensor<2>| {
                let grads = (out * weights.clone()).sum().backward();
                let w = bits(layer.weight.grad(&grads).unwrap());
                let b = bits(layer.bias.as_ref().unwrap().grad(&grads).unwrap());
                let x = x.grad(&grads).map(bits);
                (w, b, x)
            };
            let (ew, eb, ex) = run(layer.forward(x.clone()));
            let (aw, ab, ax) = run(forward(&layer, x.clone()));
            assert_same("weight gradient", &ew, &aw);
            assert_same("bias gradient", &eb, &ab);
            assert_eq!(ex.is_some(), input_tracked);
            assert_eq!(ax.is_some(), input_tracked);
            if let (Some(e), Some(a)) = (ex, ax) {
                assert_same("input gradient", &e, &a);
            }
        }
    }

    #[test]
    fn a_layer_without_bias_is_burns_linear() {
        // Initialising a layer draws from burn's generator, which other tests seed.
        let _rng = crate::train::RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let device = Device::flex();
        let layer = LinearConfig::new(4, 3).with_bias(false).init(&device);
        let x = Tensor::<2>::random([2, 4], Distribution::Default, &device);
        let expected = bits(x.clone().matmul(layer.weight.val()));
        assert_same("no bias", &expected, &bits(forward(&layer, x)));
    }
}

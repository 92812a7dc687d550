//! Adam as burn computes it, in one pass over each parameter on the CPU.
//!
//! burn's Adam updates a parameter with thirteen tensor operations (the two moments, their bias
//! corrections, the square root, the division, the step), each one a pass over the parameter on
//! one thread. On the CPU device this optimiser takes the parameter, its gradient and both moments
//! out of their tensors (no copy when nothing else holds them, which is the case between steps)
//! and computes the same operations, in the same order and in the same precision, element by
//! element in one pass split between the CPU's threads: the weights are those burn's Adam gives,
//! bit for bit (the unit test below checks it), and the state is burn's own `AdamState`, so a
//! checkpoint reads and writes as before. On other devices (wgpu, CUDA) it is burn's Adam.

use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor, TensorData};

/// burn's defaults for Adam (`AdamConfig::new()`); the unit test checks they still agree.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// Below this many elements a parameter is updated on the calling thread: splitting a bias of a
/// few hundred numbers costs more than it saves.
const SPLIT_AT: usize = 1 << 14;

/// Adam with burn's default settings, fused on the CPU (see the module's documentation).
#[derive(Clone)]
pub struct FusedAdam {
    /// burn's own, for devices whose memory is not the CPU's.
    general: Adam,
}

impl std::fmt::Debug for FusedAdam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedAdam")
            .field("beta_1", &BETA_1)
            .field("beta_2", &BETA_2)
            .field("epsilon", &EPSILON)
            .finish()
    }
}

impl Default for FusedAdam {
    fn default() -> Self {
        Self {
            general: AdamConfig::new()
                .with_beta_1(BETA_1)
                .with_beta_2(BETA_2)
                .with_epsilon(EPSILON)
                .build(),
        }
    }
}

/// The scalars of one step, computed as burn's `AdaptiveMomentum` computes them.
#[derive(Clone, Copy)]
struct Step {
    first: bool,
    /// `1 - beta_1` and `1 - beta_2`.
    keep_1: f32,
    keep_2: f32,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    combined: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`.
    epsilon: f32,
    lr: f32,
}

impl Step {
    fn new(time: usize, lr: LearningRate) -> Self {
        let t = i32::try_from(time).unwrap_or(i32::MAX);
        let correction_2 = (1.0 - BETA_2.powi(t)).sqrt();
        Self {
            first: time == 1,
            keep_1: 1.0 - BETA_1,
            keep_2: 1.0 - BETA_2,
            combined: correction_2 / (1.0 - BETA_1.powi(t)),
            epsilon: EPSILON * correction_2,
            // burn hands a scalar to the CPU backend as f64 and multiplies in f32.
            lr: lr as f32,
        }
    }

    /// One element: the moments, then the parameter. Each operation is one IEEE operation in
    /// f32, in burn's order (Rust does not contract `a * b + c` into a fused multiply-add), so
    /// the result is the one burn's tensor operations give. All four values are read before any
    /// is written: the moments' buffers are the same size and often a multiple of 4 KiB apart,
    /// and a read of one right after a write to the other at the same page offset waits for the
    /// write (measured: three quarters of this loop's time was that one read).
    #[inline(always)]
    fn apply(self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let (p0, m0, v0) = (*p, *m, *v);
        let (m1, v1) = if self.first {
            (g * self.keep_1, (g * g) * self.keep_2)
        } else {
            (
                m0 * BETA_1 + g * self.keep_1,
                v0 * BETA_2 + (g * g) * self.keep_2,
            )
        };
        let update = (m1 * self.combined) / (v1.sqrt() + self.epsilon);
        *m = m1;
        *v = v1;
        *p = p0 - update * self.lr;
    }

    fn run(self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        if p.len() >= SPLIT_AT {
            let half = p.len() / 2;
            let (p0, p1) = p.split_at_mut(half);
            let (g0, g1) = g.split_at(half);
            let (m0, m1) = m.split_at_mut(half);
            let (v0, v1) = v.split_at_mut(half);
            rayon_core::join(|| self.run(p0, g0, m0, v0), || self.run(p1, g1, m1, v1));
            return;
        }
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            self.apply(p, g, m, v);
        }
    }
}

/// The tensor's values, taken out of it (burn copies only when another handle shares them).
fn values<const D: usize>(t: Tensor<D>) -> Option<TensorData> {
    let data = t.into_data();
    data.as_slice::<f32>().is_ok().then_some(data)
}

/// Whether `device` computes in the CPU's memory, where taking values out of a tensor is free.
fn on_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let float32 =
            tensor.dtype() == burn::tensor::DType::F32 && grad.dtype() == burn::tensor::DType::F32;
        let plain = state
            .as_ref()
            .is_none_or(|s| s.momentum.max_moment_2.is_none());
        if !on_cpu(&device) || !float32 || !plain || tensor.shape() != grad.shape() {
            return self.general.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let (time, moments) = match state {
            Some(s) => (
                s.momentum.time + 1,
                Some((s.momentum.moment_1, s.momentum.moment_2)),
            ),
            None => (1, None),
        };
        let (Some(mut p), Some(g)) = (values(tensor), values(grad)) else {
            unreachable!("both were checked to be f32")
        };
        let (mut m, mut v) = match moments {
            Some((m, v)) => match (values(m), values(v)) {
                (Some(m), Some(v)) => (m, v),
                _ => unreachable!("burn's Adam keeps its moments in the parameter's dtype"),
            },
            None => {
                let zeros = || TensorData::new(vec![0f32; shape.num_elements()], shape.clone());
                (zeros(), zeros())
            }
        };
        let (Ok(ps), Ok(gs), Ok(ms), Ok(vs)) = (
            p.as_mut_slice::<f32>(),
            g.as_slice::<f32>(),
            m.as_mut_slice::<f32>(),
            v.as_mut_slice::<f32>(),
        ) else {
            unreachable!("all four are f32 tensors of one shape")
        };
        Step::new(time, lr).run(ps, gs, ms, vs);
        let state = AdamState::new(AdaptiveMomentumState::new(
            time,
            Tensor::from_data(m, &device),
            Tensor::from_data(v, &device),
        ));
        (Tensor::from_data(p, &device), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, ModuleOptimizer};

    /// A layer wide enough to be split between threads, and its bias, which is not.
    fn layer(device: &Device) -> Linear {
        LinearConfig::new(160, 128).init(device)
    }

    fn weights(layer: &Linear) -> Vec<u32> {
        let mut data = vec![layer.weight.val().into_data()];
        data.extend(layer.bias.as_ref().map(|b| b.val().into_data()));
        data.iter()
            .flat_map(|d| d.as_slice::<f32>().unwrap().iter().map(|x| x.to_bits()))
            .collect()
    }

    /// What a run does to its optimiser before a step: nothing, or hand its state to another.
    type Swap<'a> = Option<(usize, &'a dyn Fn(ModuleOptimizer) -> ModuleOptimizer)>;

    /// Steps `optim` on the same inputs and returns the weights after each step; with `swap`
    /// `(k, f)`, the optimiser is replaced by `f(optimiser)` before step `k`.
    fn train(mut optim: ModuleOptimizer, steps: usize, swap: Swap<'_>) -> Vec<Vec<u32>> {
        let _rng = crate::train::RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let device = Device::flex().autodiff();
        device.seed(11);
        let mut model = layer(&device);
        let mut seen = Vec::new();
        for step in 0..steps {
            if let Some((at, f)) = swap
                && at == step
            {
                optim = f(optim);
            }
            let x = Tensor::<2>::random(
                [32, 160],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            // Gradients that change sign and size from step to step, some of them zero.
            let scale = if step % 2 == 0 { 1.0 } else { -0.3 };
            let loss = model.forward(x).clamp_min(0.0).mul_scalar(scale).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.003, model, grads);
            seen.push(weights(&model.clone().valid()));
        }
        seen
    }

    fn burns() -> ModuleOptimizer {
        AdamConfig::new().init()
    }

    fn fused() -> ModuleOptimizer {
        ModuleOptimizer::from(FusedAdam::default())
    }

    fn assert_same(expected: &[Vec<u32>], actual: &[Vec<u32>]) {
        assert_eq!(expected.len(), actual.len());
        for (step, (e, a)) in expected.iter().zip(actual).enumerate() {
            let differing = e.iter().zip(a).filter(|(e, a)| e != a).count();
            assert_eq!(
                differing,
                0,
                "step {}: {differing} weights differ",
                step + 1
            );
        }
        // The weights moved: the comparison was not of two untouched layers.
        assert_ne!(expected.first(), expected.last());
    }

    #[test]
    fn the_fused_step_gives_burns_weights_bit_for_bit() {
        assert_same(&train(burns(), 6, None), &train(fused(), 6, None));
    }

    #[test]
    fn its_saved_state_is_burns_adam_state_both_ways() {
        let expected = train(burns(), 6, None);
        let to_burns = |o: ModuleOptimizer| burns().from_bytes(o.into_bytes().unwrap()).unwrap();
        let to_fused = |o: ModuleOptimizer| fused().from_bytes(o.into_bytes().unwrap()).unwrap();
        assert_same(&expected, &train(fused(), 6, Some((3, &to_burns))));
        assert_same(&expected, &train(burns(), 6, Some((3, &to_fused))));
    }
}

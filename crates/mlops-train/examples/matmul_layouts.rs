//! The matrix products of one training step of the wide MLP (`hidden_layers: [512, 512]`, batch
//! 256), timed on burn's CPU backend by operand layout: `A B` is a forward product (both operands
//! row-major), `A^T B` the weight gradient (a transposed view on the left), `A B^T` the input
//! gradient (a transposed view on the right), as burn's autodiff forms them. Prints microseconds
//! and GFLOP/s per product (medians of 300 after 20 warm-up products); `xtask/bench/matmul_torch.py`
//! prints the same table for PyTorch. Figures and what they showed: BENCHMARKS.md, "Where
//! the wide case's time goes". `cargo run --profile profiling -p mlops-train --example matmul_layouts`

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// The `mlops` binary's allocator: with glibc's, every 1 MB product result is mapped and faulted
/// in afresh, which is not what training pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (m, k, n) of the products of a step: layer 2 forward and gradients, layer 1, the output layer.
const SHAPES: [(usize, usize, usize); 5] = [
    (256, 512, 512),
    (512, 256, 512),
    (256, 64, 512),
    (64, 256, 512),
    (256, 512, 10),
];

fn main() {
    let device = Device::flex();
    println!(
        "{:>16} {:>6} {:>10} {:>9}",
        "m x k x n", "layout", "us", "GFLOP/s"
    );
    for (m, k, n) in SHAPES {
        let random = |rows, cols| -> Tensor<2> {
            Tensor::random([rows, cols], Distribution::Default, &device)
        };
        let cases = [
            ("A B", random(m, k), random(k, n)),
            ("A^T B", random(k, m).transpose(), random(k, n)),
            ("A B^T", random(m, k), random(n, k).transpose()),
        ];
        for (layout, lhs, rhs) in cases {
            let once = || {
                let _ = lhs.clone().matmul(rhs.clone()).into_data();
            };
            (0..20).for_each(|_| once());
            let mut times: Vec<f64> = (0..300)
                .map(|_| {
                    let t = Instant::now();
                    once();
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let t = times.get(times.len() / 2).copied().unwrap_or_default();
            println!(
                "{:>16} {layout:>6} {:>10.1} {:>9.1}",
                format!("{m} x {k} x {n}"),
                t * 1e6,
                2.0 * (m * k * n) as f64 / t / 1e9
            );
        }
    }
}

//! The compute device a job trains on, and what it turned out to be.
//!
//! `cpu` is burn's flex backend. `wgpu` asks wgpu for its default adapter once per process (a
//! cubecl runtime is registered per adapter and cannot be registered twice) and records what it
//! got: on a machine without a GPU that is a software rasteriser (Mesa's lavapipe/llvmpipe), which
//! a job that says `require_gpu: true` must refuse rather than train for hours on a CPU.
//! `wgpu` and `cuda` exist only in builds with the cargo feature of that name (the release
//! binaries have `wgpu`); without it, asking for one is an error that says how to get it.

use burn::tensor::Device as BurnDevice;
use mlops_manifest::model::Device;

pub use mlops_artifacts::training::{Adapter, Compute};

/// Why no device could be had.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceError {
    pub message: String,
    pub hint: String,
}

/// The burn device for `device`, and what it is.
pub fn open(device: Device, require_gpu: bool) -> Result<(BurnDevice, Compute), DeviceError> {
    match device {
        Device::Cpu => Ok((
            BurnDevice::flex(),
            Compute {
                device,
                backend: "flex".to_owned(),
                adapter: None,
            },
        )),
        Device::Wgpu => wgpu(device, require_gpu),
        Device::Cuda => cuda(device),
    }
}

/// The wgpu adapter, refused when `require_gpu` and it is a software rasteriser.
#[cfg(feature = "wgpu")]
fn wgpu(device: Device, require_gpu: bool) -> Result<(BurnDevice, Compute), DeviceError> {
    let (wgpu_device, adapter) = wgpu_setup()?;
    if require_gpu && adapter.is_software() {
        return Err(DeviceError {
            message: format!(
                "`require_gpu: true`, but the adapter wgpu found is `{}`, a software \
                 rasteriser running on the CPU ({} {})",
                adapter.name, adapter.driver, adapter.driver_info
            ),
            hint: "run on a runner with a GPU and its Vulkan/Metal/DX12 driver, or drop \
                   `require_gpu` to train on the CPU adapter anyway (`device: cpu` is \
                   faster there)"
                .to_owned(),
        });
    }
    Ok((
        BurnDevice::from(wgpu_device),
        Compute {
            device,
            backend: "wgpu".to_owned(),
            adapter: Some(adapter),
        },
    ))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_: Device, _: bool) -> Result<(BurnDevice, Compute), DeviceError> {
    Err(DeviceError {
        message: "`training.local.device: wgpu`, but this mlops was built without wgpu".to_owned(),
        hint: "use a release binary (every one has wgpu) or build with `cargo build --release \
               --features wgpu` (`cargo run --features wgpu -- ...`); `device: cpu` needs neither"
            .to_owned(),
    })
}

#[cfg(feature = "cuda")]
fn cuda(device: Device) -> Result<(BurnDevice, Compute), DeviceError> {
    Ok((
        BurnDevice::from(burn::backend::CudaDevice::default()),
        Compute {
            device,
            backend: "cuda".to_owned(),
            adapter: None,
        },
    ))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_: Device) -> Result<(BurnDevice, Compute), DeviceError> {
    Err(DeviceError {
        message: "`training.local.device: cuda`, but this mlops was built without CUDA support"
            .to_owned(),
        hint: "use a release binary built with CUDA (the `-cuda` archive) or build with \
               `cargo build --release --features cuda`; `device: wgpu` also uses the GPU"
            .to_owned(),
    })
}

/// The process's wgpu device, set up on first use.
#[cfg(feature = "wgpu")]
fn wgpu_setup() -> Result<(burn::backend::WgpuDevice, Adapter), DeviceError> {
    use burn::backend::wgpu::{RuntimeOptions, graphics::AutoGraphicsApi, try_init_setup};
    static SETUP: std::sync::OnceLock<Result<Adapter, String>> = std::sync::OnceLock::new();
    let device = burn::backend::WgpuDevice::default();
    let adapter = SETUP.get_or_init(|| {
        try_init_setup::<AutoGraphicsApi>(&device, RuntimeOptions::default())
            .map(|setup| describe(&setup.adapter.get_info()))
            .map_err(|e| e.to_string())
    });
    match adapter {
        Ok(a) => Ok((device, a.clone())),
        Err(e) => Err(DeviceError {
            message: format!("wgpu found no usable adapter: {e}"),
            hint: "install the GPU's Vulkan driver (on Debian/Ubuntu without a GPU, \
                   `mesa-vulkan-drivers` and `libvulkan1` give a software adapter), or use \
                   `device: cpu`"
                .to_owned(),
        }),
    }
}

#[cfg(feature = "wgpu")]
fn describe(info: &burn::backend::wgpu::wgpu::AdapterInfo) -> Adapter {
    use burn::backend::wgpu::wgpu::DeviceType;
    let kind = match info.device_type {
        DeviceType::DiscreteGpu => "discrete-gpu",
        DeviceType::IntegratedGpu => "integrated-gpu",
        DeviceType::VirtualGpu => "virtual-gpu",
        DeviceType::Cpu => "cpu",
        DeviceType::Other => "other",
    };
    Adapter {
        name: info.name.clone(),
        kind: kind.to_owned(),
        api: info.backend.to_str().to_owned(),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_needs_no_adapter() {
        let (_, compute) = open(Device::Cpu, false).unwrap();
        assert_eq!(compute.backend, "flex");
        assert_eq!(compute.describe(), "flex");
        assert!(compute.adapter.is_none());
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn wgpu_without_the_feature_says_how_to_get_it() {
        let e = open(Device::Wgpu, false).unwrap_err();
        assert!(e.message.contains("built without wgpu"), "{}", e.message);
        assert!(e.hint.contains("--features wgpu"), "{}", e.hint);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let e = open(Device::Cuda, true).unwrap_err();
        assert!(e.message.contains("without CUDA support"), "{}", e.message);
        assert!(e.hint.contains("--features cuda"), "{}", e.hint);
    }

    #[test]
    fn software_adapters_are_told_apart() {
        let mut a = Adapter {
            name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            kind: "cpu".into(),
            api: "vulkan".into(),
            driver: "llvmpipe".into(),
            driver_info: "Mesa 22.3.6".into(),
        };
        assert!(a.is_software());
        let compute = Compute {
            device: Device::Wgpu,
            backend: "wgpu".into(),
            adapter: Some(a.clone()),
        };
        assert_eq!(
            compute.describe(),
            "wgpu on llvmpipe (LLVM 15.0.6, 256 bits) (cpu, vulkan)"
        );
        a.kind = "discrete-gpu".into();
        assert!(!a.is_software());
    }
}
